"""Small pieces of `s2gen.pretrain`: patching, masks, momentum, queue, losses, splits, schedule,
normalisation, resizing, symbols, objectives."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.data import split_of
from s2gen.pretrain.encoder import SeriesEncoder, random_encoder
from s2gen.pretrain.losses import (
    IGNORE,
    contrastive_loss,
    distill_targets,
    draw_patch_mask,
    draw_token_mask,
    key_validity,
    n_masked,
)
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.objectives.s2 import enqueue, momentum_update
from s2gen.pretrain.symbols import pretraining_vocabulary
from s2gen.pretrain.train import alpha_at, lr_at
from s2gen.symbols.vocabulary import vocabulary
from tests.tiny import tiny

torch.set_num_threads(1)
TINY = tiny(
    window=64,
    patch=8,
    max_tokens=24,
    queue_size=32,
)


VOCABULARY = pretraining_vocabulary(vocabulary())


def tiny_model(seed=0, **overrides) -> Pretrainer:
    torch.manual_seed(seed)
    return Pretrainer(PretrainConfig.preset("ci", **{**TINY, **overrides}), VOCABULARY)


def test_patching_round_trip_and_encoder_matches_training_path():
    g = torch.Generator().manual_seed(0)
    series = torch.randn(3, 64, generator=g)
    patches = series.unflatten(-1, (-1, 8))  # as the backbone cuts windows
    assert patches.shape == (3, 8, 8)
    assert torch.equal(patches[1, 2], series[1, 16:24])
    assert torch.equal(patches.flatten(1), series)

    enc = random_encoder("ci", seed=1, **TINY)
    raw = np.random.default_rng(0).normal(3.0, 5.0, size=(4, 64))
    mean, std = raw.mean(1, keepdims=True), raw.std(1, keepdims=True)
    norm = torch.from_numpy((raw - mean) / np.sqrt(std**2 + 1e-5)).float()
    stats = torch.from_numpy(np.stack([np.arcsinh(mean[:, 0]), np.log(std[:, 0])], 1)).float()
    hidden = enc.backbone(norm, stats=stats)  # (B, 1 + P, d)
    direct = torch.cat([hidden[:, 0], hidden[:, 1:].mean(1)], dim=1)  # [CLS] and patch mean
    via_encoder = enc.forward_features(torch.from_numpy(raw).float())
    assert via_encoder.shape == (4, 2 * 16) and enc.dim == 32
    torch.testing.assert_close(via_encoder, direct, atol=1e-5, rtol=1e-4)


def test_encoder_resizes_any_length_to_its_window_by_default():
    enc = random_encoder("ci", seed=0, **TINY)
    rng = np.random.default_rng(1)
    short = rng.normal(size=(2, 24)).astype(np.float32)
    stretched = np.stack([np.interp(np.linspace(0, 23, 64), np.arange(24), r) for r in short])
    np.testing.assert_allclose(enc.embed(short), enc.embed(stretched), atol=1e-4)
    long = rng.normal(size=(2, 200)).astype(np.float32)
    squeezed = np.stack([np.interp(np.linspace(0, 199, 64), np.arange(200), r) for r in long])
    np.testing.assert_allclose(enc.embed(long), enc.embed(squeezed), atol=1e-4)
    mixed = [rng.normal(size=n) for n in (1, 5, 64, 13, 300)]
    out = enc.embed(mixed, batch_size=2)
    assert out.shape == (5, enc.dim) and np.isfinite(out).all()
    np.testing.assert_allclose(out[2], enc.embed(mixed[2][None, :])[0], atol=1e-5)
    x = torch.randn(2, 37, requires_grad=True)
    enc.forward_features(x).pow(2).sum().backward()  # (a plain sum of a LayerNorm is constant)
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="empty"):
        enc.embed([np.zeros(0)])
    with pytest.raises(ValueError, match="series 1 has NaN"):
        enc.embed([np.ones(5), np.array([1.0, np.nan, 2.0])])


def test_encoder_without_resize_keeps_the_last_window_and_left_pads():
    enc = random_encoder("ci", seed=0, **TINY)
    rng = np.random.default_rng(2)
    long = rng.normal(size=(2, 200)).astype(np.float32)
    np.testing.assert_allclose(
        enc.embed(long, resize="none"), enc.embed(long[:, -64:], resize="none"), atol=1e-5
    )
    short = rng.normal(size=(1, 13)).astype(np.float32)  # 13 points -> 2 patches of 8
    padded = np.concatenate([np.full((1, 3), short[0, 0]), short], axis=1)  # first value, left
    np.testing.assert_allclose(
        enc.embed(short, resize="none"), enc.embed(padded, resize="none"), atol=1e-5
    )
    assert not np.allclose(enc.embed(short, resize="none"), enc.embed(short), atol=1e-3)
    with pytest.raises(ValueError, match="resize"):
        enc.embed(short, resize="cubic")


def test_random_encoder_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b = random_encoder("ci", seed=3, **TINY), random_encoder("ci", seed=3, **TINY)
    c = random_encoder("ci", seed=4, **TINY)
    assert torch.equal(torch.get_rng_state(), state)
    weight = "backbone.frontend.proj.weight"
    assert torch.equal(a.state_dict()[weight], b.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], c.state_dict()[weight])
    assert isinstance(a, SeriesEncoder) and a.dim == 32
    model = tiny_model(3)  # a run's backbone starts where random_encoder(seed) is
    assert torch.equal(model.series.frontend.proj.weight, a.backbone.frontend.proj.weight)


def test_patch_mask_has_exact_count_and_is_reproducible():
    assert n_masked(16, 0.4) == 6 and n_masked(8, 0.4) == 3 and n_masked(2, 0.9) == 1
    assert n_masked(16, 0.0) == 0
    m1 = draw_patch_mask(500, 16, 0.4, torch.Generator().manual_seed(5))
    m2 = draw_patch_mask(500, 16, 0.4, torch.Generator().manual_seed(5))
    assert m1.dtype == torch.bool and m1.shape == (500, 16)
    assert torch.equal(m1, m2)
    assert (m1.sum(1) == 6).all()
    freq = m1.float().mean(0)  # every position masked ~6/16 of the time
    assert (freq - 6 / 16).abs().max() < 0.1
    assert len({tuple(r.tolist()) for r in m1}) > 100


def test_token_mask_follows_bert_recipe_and_never_touches_padding():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(5, 70, (400, 30), generator=g)
    tokens[:, 20:] = 0  # padding
    inputs, labels = draw_token_mask(
        tokens, 0.15, g, pad_id=0, mask_id=3, first_regular=5, vocab_size=73
    )
    chosen = labels != IGNORE
    assert not chosen[:, 20:].any() and torch.equal(inputs[:, 20:], tokens[:, 20:])
    assert abs(chosen[:, :20].float().mean().item() - 0.15) < 0.02
    assert torch.equal(labels[chosen], tokens[chosen])
    assert torch.equal(inputs[~chosen], tokens[~chosen])
    masked = (inputs == 3) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.05
    assert (inputs[chosen] >= 5).logical_or(inputs[chosen] == 3).all()  # no other specials


def test_momentum_update_copies_at_zero_keeps_at_one():
    online = tiny_model(0).objectives["s2"].series_proj
    ema = tiny_model(1).objectives["s2"].series_proj
    before = [p.clone() for p in ema.parameters()]
    momentum_update(online, ema, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, ema.parameters(), strict=True))
    momentum_update(online, ema, 0.5)
    for a, b, c in zip(before, online.parameters(), ema.parameters(), strict=True):
        torch.testing.assert_close(c, 0.5 * a + 0.5 * b)
    momentum_update(online, ema, 0.0)
    assert all(
        torch.equal(a, b) for a, b in zip(online.parameters(), ema.parameters(), strict=True)
    )


def test_queue_wraps_around_and_keeps_newest():
    q = torch.zeros(5, dtype=torch.long)
    ptr = enqueue(q, 3, torch.tensor([1, 2, 3, 4]))
    assert ptr == 2 and q.tolist() == [3, 4, 0, 1, 2]
    ptr = enqueue(q, ptr, torch.arange(10, 17))  # more than the queue holds
    assert q.tolist() == [13, 14, 15, 16, 12] and ptr == 4
    assert enqueue(q, ptr, torch.zeros(0, dtype=torch.long)) == 4


def test_contrastive_loss_on_a_hand_computed_case():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]])
    loss = contrastive_loss(logits, targets, valid, torch.ones(2))
    row0 = -(2.0 - math.log(math.exp(2) + 1 + math.exp(1)))
    lse1 = math.log(1 + math.e)  # the invalid key (logit 3) is left out
    row1 = -(0.25 * (0 - lse1) + 0.75 * (1 - lse1))
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    only_first = contrastive_loss(logits, targets, valid, torch.tensor([1.0, 0.0]))
    assert only_first.item() == pytest.approx(row0, rel=1e-6)


def test_distillation_targets_one_softmax_sum_to_one_and_onehot_at_alpha_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, generator=g) * 3
    valid = torch.rand(4, 9, generator=g) > 0.3
    valid[:, :4] |= torch.eye(4, 9, dtype=torch.bool)[:, :4]
    t = distill_targets(logits, valid, 0.4)
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    assert (t[~valid] == 0).all()
    torch.testing.assert_close(distill_targets(logits, valid, 0.0), torch.eye(4, 9))
    soft = logits.masked_fill(~valid, -math.inf).softmax(1)  # used as is: no second softmax
    torch.testing.assert_close(distill_targets(logits, valid, 1.0), soft)


def test_key_validity_masks_same_expression_missing_symbols_and_empty_slots():
    ids = torch.tensor([7, 7, 9, 5])
    has = torch.tensor([True, True, True, False])
    queue = torch.tensor([9, -1, 7, 4])
    v = key_validity(ids, has, queue)
    assert v.shape == (4, 8)
    assert v.diagonal().all()  # own positive always kept
    assert not v[0, 1] and not v[1, 0]  # same expression is no negative
    assert v[0, 2] and not v[0, 3]  # a key without symbol is never a negative
    assert v[0, 4] and not v[0, 5] and not v[0, 6] and v[0, 7]
    assert not v[2, 4] and v[2, 6]


def test_per_sample_masked_series_loss_works_under_vmap_and_functional_call():
    model = tiny_model(0).eval()  # no dropout: OATS scores in eval mode
    g = torch.Generator().manual_seed(2)
    series = torch.randn(5, 64, generator=g) * 4 + 2
    mask = draw_patch_mask(5, 8, 0.4, g)
    batched = model(series, mask)
    assert batched.shape == (5,)
    torch.testing.assert_close(model(series[:1], mask[:1])[0], batched[0])
    params = {k: v.detach() for k, v in model.named_parameters() if k.startswith("series.")}

    def one(p, s, m):
        return torch.func.functional_call(model, p, (s[None], m[None]))[0]

    per_sample = torch.func.vmap(one, in_dims=(None, 0, 0))(params, series, mask)
    torch.testing.assert_close(per_sample, batched, atol=1e-5, rtol=1e-4)
    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, series, mask)
    assert grads["series.frontend.proj.weight"].shape == (5, 16, 8)
    no_mask = torch.zeros_like(mask)
    assert (model(series, no_mask) == 0).all()


def test_masked_points_reach_neither_the_encoder_nor_the_normalisation():
    """The leak of issue 14: with whole-window statistics the visible inputs carried the mean
    of the masked points (the normalised window sums to zero), so a constant predictor of that
    mean lowered the masked-series loss. Now changing masked points changes nothing the
    encoder sees; only the target moves."""
    from s2gen.pretrain.objectives.s2 import patch_visibility
    from s2gen.pretrain.scaling import instance_norm, level_scale

    model = tiny_model(0).eval()
    g = torch.Generator().manual_seed(3)
    series = torch.randn(4, 64, generator=g).cumsum(1)  # random walks: level differs by patch
    mask = draw_patch_mask(4, 8, 0.4, g)
    visible = patch_visibility(mask, 8)
    moved = torch.where(visible, series, series + 50.0)  # masked points shifted far away
    z, z_moved = instance_norm(series, visible), instance_norm(moved, visible)
    torch.testing.assert_close(z[visible], z_moved[visible])
    stats, stats_moved = level_scale(series, visible), level_scale(moved, visible)
    torch.testing.assert_close(stats, stats_moved)
    torch.testing.assert_close(model.series(z, mask, stats), model.series(z_moved, mask, stats))
    assert not torch.allclose(model(series, mask), model(moved, mask))  # the target did move
    # whole-window statistics (the old pipeline) let the shift leak into the visible inputs
    leaky, leaky_moved = instance_norm(series), instance_norm(moved)
    assert not torch.allclose(leaky[visible], leaky_moved[visible])
    # and the visible points of a normalised window have mean 0 and variance 1
    for row in range(4):
        assert abs(z[row][visible[row]].mean().item()) < 1e-5
        assert abs(z[row][visible[row]].var(unbiased=False).item() - 1) < 1e-3


def test_splits_are_deterministic_disjoint_and_sized():
    seeds = np.random.default_rng(0).integers(0, 2**63, size=200_000, dtype=np.uint64)
    s = split_of(seeds)
    assert np.array_equal(s, split_of(seeds.copy()))
    assert abs((s == 1).mean() - 0.01) < 0.002 and abs((s == 2).mean() - 0.01) < 0.002
    assert np.array_equal(s == 1, seeds % 1000 < 10)
    assert np.array_equal(s == 2, (seeds % 1000 >= 10) & (seeds % 1000 < 20))
    wide = split_of(seeds, val_permille=100, reference_permille=50)
    assert abs((wide == 1).mean() - 0.1) < 0.01 and abs((wide == 2).mean() - 0.05) < 0.01


def test_schedule_warms_up_decays_to_min_and_alpha_ramps():
    cfg = PretrainConfig.preset("ci", steps=100, warmup=0.1, lr=1e-3, min_lr=1e-5, alpha_ramp=0.5)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)
    assert alpha_at(0, cfg) == 0 and alpha_at(25, cfg) == pytest.approx(0.2)
    assert alpha_at(50, cfg) == alpha_at(99, cfg) == pytest.approx(0.4)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="window"):
        PretrainConfig.preset("ci", window=100, patch=16)
    with pytest.raises(ValueError, match="n_heads"):
        PretrainConfig.preset("ci", d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="preset"):
        PretrainConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown setting"):
        PretrainConfig.preset("ci", depth=3)
    base = PretrainConfig.preset("base")
    assert (base.d_model, base.n_heads, base.d_ff, base.n_layers) == (512, 8, 2048, 6)
    assert PretrainConfig.from_dict(base.to_dict()) == base


def test_importing_the_cli_module_does_not_import_torch():
    code = "import sys, s2gen.pretrain.cli, s2gen.pretrain; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rows_without_symbol_count_only_in_the_masked_series_loss():
    g = torch.Generator().manual_seed(0)
    batch = {
        "series": torch.randn(6, 64, generator=g),
        "tokens": torch.randint(5, 70, (6, 12), generator=g),
        "has_symbol": torch.tensor([True, True, True, False, False, False]),
        "expr_id": torch.arange(6),
    }
    blank = {**batch, "tokens": batch["tokens"].masked_fill(~batch["has_symbol"][:, None], 0)}
    symbol_rows = {k: v[:3] for k, v in batch.items()}

    def losses(model, b):
        torch.manual_seed(7)  # dropout
        return model.losses(b, 0.4, torch.Generator().manual_seed(1))

    a, b = losses(tiny_model(0), batch), losses(tiny_model(0), blank)
    for key in ("mts", "mlm", "t2s", "s2t"):
        torch.testing.assert_close(a[key], b[key])  # their tokens are ignored
    model = tiny_model(0)
    c = losses(model, symbol_rows)
    assert set(model.objectives["s2"].queue_ids.tolist()) == {-1, 0, 1, 2}  # only symbol rows
    assert not torch.isclose(a["mts"], c["mts"])  # symbol-free rows do count in MTS
