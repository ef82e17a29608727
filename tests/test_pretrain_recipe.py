"""The pretraining recipe of issue 14: canonical symbols, skeleton negatives, token budget,
resampled training spans, float32 similarities, weight decay, the timedrl term, config files."""

import json
import math

import numpy as np
import pytest
import torch

from s2gen.pretrain.config import PretrainConfig, read_settings
from s2gen.pretrain.data import draw_windows, resample_spans
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.objectives.timedrl import negative_cosine
from s2gen.pretrain.scaling import resize_linear
from s2gen.pretrain.symbols import (
    DECADE_TOKENS,
    canonical_tokens,
    covering_length,
    pretraining_vocabulary,
    skeleton_ids,
)
from s2gen.pretrain.train import param_groups
from s2gen.symbols import vocabulary as vocab
from s2gen.symbols.parse import program_of
from tests.tiny import tiny

torch.set_num_threads(1)
STORED = vocab.vocabulary()
VOCABULARY = pretraining_vocabulary(STORED)
TINY = tiny(
    window=64,
    patch=8,
    max_tokens=24,
    queue_size=32,
)


def token_rows(*texts: str, width: int = 40) -> np.ndarray:
    rows = np.zeros((len(texts), width), np.int16)
    for i, text in enumerate(texts):
        t = vocab.program_to_tokens(*program_of(text))
        rows[i, : len(t)] = t
    return rows


def test_constants_become_one_signed_decade_token():
    rows = token_rows("sin(x_0) + (-0.092)*x_1", "x_0*120.0", "x_0 + 5.0")
    canon, lengths = canonical_tokens(rows, len(STORED))
    names = [[VOCABULARY[i] for i in row[:n]] for row, n in zip(canon, lengths, strict=True)]
    assert names[0] == ["add", "sin", "x_0", "mul", "<-1e-2>", "x_1"]
    assert names[1] == ["mul", "x_0", "<+1e+2>"]
    assert names[2] == ["add", "x_0", "<+1e+0>"]
    assert (canon[0, lengths[0] :] == 0).all() and canon.dtype == np.int16
    assert len(DECADE_TOKENS) == 36 and VOCABULARY[len(STORED)] == "<+1e-8>"
    # every decade of the constant range maps onto its own token
    for value, decade in (("0.00000001", -8), ("(-0.999)", -1), ("9990000000.0", 9)):
        canon, n = canonical_tokens(token_rows(f"x_0 + {value}"), len(STORED))
        sign = "-" if "-" in value else "+"
        assert VOCABULARY[canon[0, n[0] - 1]] == f"<{sign}1e{decade:+d}>"


def test_share_of_constant_tokens_falls_on_a_generated_batch():
    from s2gen.config import GenerateConfig
    from s2gen.generators.pairs import generate_batch, token_length
    from s2gen.kernels.seeds import row_seeds

    batch = generate_batch(GenerateConfig(max_output_dim=2), row_seeds(0, 0, 500))
    tokens = batch.tokens(token_length(GenerateConfig(max_output_dim=2))).reshape(1000, -1)
    real = tokens != 0
    digits = (tokens >= vocab.PLUS) & (tokens < vocab.EXP_BASE + 16)
    canon, lengths = canonical_tokens(tokens, len(STORED))
    canon_real = canon != 0
    before = digits[real].mean()  # sign, digits and exponent tokens of constants
    after = (canon >= len(STORED))[canon_real].mean()
    assert before > 0.6 and after < 0.4, (before, after)
    assert (lengths == canon_real.sum(1)).all() and (lengths <= real.sum(1)).all()


def test_affine_variants_share_a_skeleton_and_are_no_negatives():
    from s2gen.pretrain.losses import key_validity

    rows = token_rows(
        "0.5*sin(x_0) + 2.0", "(-3.1)*sin(x_0) + 0.07", "0.5*cos(x_0) + 2.0", "sin(x_0)"
    )
    canon, _ = canonical_tokens(rows, len(STORED))
    ids = skeleton_ids(canon, len(STORED))
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3]}) == 3
    valid = key_validity(torch.as_tensor(ids), torch.ones(4, dtype=torch.bool), torch.empty(0))
    assert not valid[0, 1] and not valid[1, 0] and valid[0, 2] and valid[0, 3]


def test_token_budget_covers_at_least_99_percent():
    lengths = np.concatenate([np.full(990, 20), np.full(10, 200)])
    assert covering_length(lengths) == 24  # 99% are 20 long: the next multiple of 8
    lengths = np.arange(1, 1001)
    need = covering_length(lengths)
    assert (lengths <= need).mean() >= 0.99 and need % 8 == 0 and need - 8 < 991


def test_resampled_spans_match_numpy_interp():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 300))
    start = np.array([0.0, 10, 57, 200, 0, 1])
    span = np.array([64.0, 20, 243, 100, 300, 2])
    got = resample_spans(values, start, span, 64)
    for r in range(6):
        grid = start[r] + np.linspace(0, span[r] - 1, 64)
        want = np.interp(grid, np.arange(300), values[r])
        np.testing.assert_allclose(got[r], want, rtol=1e-6, atol=1e-6)
        assert got[r, 0] == pytest.approx(values[r, int(start[r])], abs=1e-6)
    # the same grid as the encoder's resize at evaluation
    x = torch.from_numpy(values[1:2, 10:30]).float()
    np.testing.assert_allclose(resize_linear(x, 64).numpy()[0], got[1], atol=1e-5)


def test_training_windows_mix_plain_windows_with_short_and_long_spans():
    cfg = PretrainConfig.preset("ci", window=64, patch=8, crop_prob=0.5, crop_min=0.25)
    t = np.arange(512, dtype=np.float64)
    values = np.tile(t, (4000, 1))  # a ramp: a window's slope is its span / 63
    windows = draw_windows(values, cfg, np.random.default_rng(1))
    assert windows.shape == (4000, 64) and windows.dtype == np.float32
    slope = (windows[:, -1] - windows[:, 0]) / 63
    plain = np.isclose(slope, 1.0)
    assert 0.4 < plain.mean() < 0.6  # crop_prob of the windows are resampled spans
    spans = slope[~plain] * 63 + 1
    assert spans.min() >= 0.25 * 64 - 1 and spans.max() <= 4 * 64 + 1
    assert (spans < 64).mean() > 0.3 and (spans > 64).mean() > 0.3  # stretched and squeezed
    np.testing.assert_array_equal(draw_windows(values, cfg, np.random.default_rng(1)), windows)
    centred = draw_windows(values, cfg, None)
    assert (centred[:, 0] == 224).all() and (np.diff(centred, axis=1) == 1).all()


def test_similarities_and_softmax_stay_float32_under_autocast(monkeypatch):
    import s2gen.pretrain.objectives.s2 as s2

    seen = []
    original = s2.contrastive_loss

    def spy(logits, targets, valid, weight):
        seen.append((logits.dtype, targets.dtype))
        return original(logits, targets, valid, weight)

    monkeypatch.setattr(s2, "contrastive_loss", spy)
    torch.manual_seed(0)
    model = Pretrainer(PretrainConfig.preset("ci", **TINY), VOCABULARY)
    g = torch.Generator().manual_seed(0)
    batch = {
        "series": torch.randn(6, 64, generator=g),
        "tokens": torch.randint(5, 70, (6, 12), generator=g),
        "has_symbol": torch.ones(6, dtype=torch.bool),
        "expr_id": torch.arange(6),
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.losses(batch, 0.4, g)
    assert seen == [(torch.float32, torch.float32)] * 2
    assert out["t2s"].dtype == torch.float32


def test_temperature_floor_is_at_least_0_05():
    cfg = PretrainConfig()
    assert cfg.temp_min >= 0.05
    torch.manual_seed(0)
    model = Pretrainer(PretrainConfig.preset("ci", **TINY), VOCABULARY)
    s2 = model.objectives["s2"]
    with torch.no_grad():
        s2.log_temp.fill_(math.log(0.001))
    model.after_step()
    assert s2.temp.item() == pytest.approx(cfg.temp_min)


def test_weight_decay_skips_embeddings_positions_norms_biases_and_temperature():
    torch.manual_seed(0)
    model = Pretrainer(PretrainConfig.preset("ci", **TINY), VOCABULARY)
    decay, rest = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in rest["params"]}
    assert "objectives.s2.symbol.tok.weight" in kept  # the tied token embedding
    for name in ("series.pos", "series.cls", "series.mask_token", "objectives.s2.log_temp"):
        assert name in kept
    assert "series.frontend.proj.weight" in decayed and "series.blocks.0.attn.qkv.weight" in decayed
    assert not any(n.endswith(("bias", "norm1.weight")) for n in decayed)
    assert rest["weight_decay"] == 0 and decay["weight_decay"] == 0.05


def test_negative_cosine_on_a_hand_computed_case_and_stops_the_target_gradient():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z = torch.tensor([[3.0, 0.0], [1.0, 1.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx(-(1.0 + 1 / math.sqrt(2)) / 2, rel=1e-6)
    loss.backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_timedrl_term_uses_two_dropout_views_and_stops_gradients_at_the_other_view():
    torch.manual_seed(0)
    cfg = PretrainConfig.preset("ci", **TINY, objective="timedrl", dropout=0.2, w_rec=0.0)
    model = Pretrainer(cfg)
    g = torch.Generator().manual_seed(0)
    batch = {"series": torch.randn(8, 64, generator=g).cumsum(1)}
    torch.manual_seed(1)
    out = model.losses(batch, 0.0, g)
    assert set(out) == {"inst", "loss"} and -1 <= out["inst"].item() <= 1
    # by hand: the same two passes, predictor on one view against the detached other
    torch.manual_seed(1)
    from s2gen.pretrain.scaling import instance_norm, level_scale

    z, stats = instance_norm(batch["series"]), level_scale(batch["series"])
    h1, h2 = model.series(z, stats=stats)[:, 0], model.series(z, stats=stats)[:, 0]
    pred = model.objectives["timedrl"].predictor
    cos = torch.nn.functional.cosine_similarity
    by_hand = -0.5 * (cos(pred(h1), h2).mean() + cos(pred(h2), h1).mean())
    torch.testing.assert_close(out["inst"], by_hand)
    # the stop-gradient: one direction's loss sends no gradient into its target view
    torch.manual_seed(1)
    h1, target = model.series(z, stats=stats)[:, 0], model.series(z, stats=stats)[:, 0]
    assert target.requires_grad  # the target view is part of the graph ...
    loss = negative_cosine(pred(h1), target)
    assert torch.autograd.grad(loss, target, allow_unused=True)[0] is None  # ... but detached
    assert torch.autograd.grad(loss, h1)[0].abs().sum() > 0


def test_timedrl_needs_dropout_and_objectives_are_checked():
    with pytest.raises(ValueError, match="dropout"):
        PretrainConfig(objective="s2+timedrl", dropout=0.0)
    assert PretrainConfig(objective="s2+timedrl", dropout=0.0, w_inst=0.0).w_inst == 0
    with pytest.raises(ValueError, match="objective"):
        PretrainConfig(objective="s2+nope")
    with pytest.raises(ValueError, match="objective"):
        PretrainConfig(objective="s2+s2")
    assert PretrainConfig(objective="timedrl").needs_symbols is False


def test_settings_files_in_every_format_and_their_errors(tmp_path):
    (tmp_path / "a.toml").write_text('dropout = 0.2\nw_itc = 0.5\nobjective = "s2"\n')
    (tmp_path / "a.yaml").write_text("dropout: 0.2\nw_itc: 0.5\nobjective: s2\n")
    (tmp_path / "a.json").write_text(json.dumps({"dropout": 0.2, "w_itc": 0.5, "objective": "s2"}))
    for name in ("a.toml", "a.yaml", "a.json"):
        cfg = PretrainConfig.preset("ci", **read_settings(tmp_path / name))
        assert (cfg.dropout, cfg.w_itc, cfg.objective) == (0.2, 0.5, "s2")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="give a table"):
        read_settings(tmp_path / "list.json")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="cannot be parsed"):
        read_settings(tmp_path / "bad.yaml")
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ValueError, match="cannot be parsed"):
        read_settings(tmp_path / "evil.yaml")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="unknown setting"):
        PretrainConfig.preset("ci", **{"dropuot": 0.1})
