"""Small pieces of `s2gen.pretrain`: patching, masks, momentum, queue, losses, splits, schedule."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.data import expression_ids, normalize_windows, split_of
from s2gen.pretrain.encoder import SeriesEncoder, random_encoder
from s2gen.pretrain.losses import (
    IGNORE,
    contrastive_loss,
    distill_targets,
    draw_patch_mask,
    draw_token_mask,
    key_validity,
    masked_series_loss_per_sample,
    n_masked,
)
from s2gen.pretrain.model import S2Pretrainer, enqueue, momentum_update
from s2gen.pretrain.train import alpha_at, lr_at
from s2gen.symbols.vocabulary import vocabulary

torch.set_num_threads(1)
TINY = dict(
    window=64,
    patch=8,
    d_model=16,
    n_heads=2,
    d_ff=32,
    n_layers=1,
    sym_d_model=16,
    sym_heads=2,
    sym_d_ff=32,
    sym_layers=1,
    max_tokens=24,
    embed_dim=8,
    queue_size=32,
)


def tiny_model(seed=0, **overrides) -> S2Pretrainer:
    torch.manual_seed(seed)
    return S2Pretrainer(PretrainConfig.preset("ci", **{**TINY, **overrides}), vocabulary())


def test_patching_round_trip_and_encoder_matches_training_path():
    g = torch.Generator().manual_seed(0)
    series = torch.randn(3, 64, generator=g)
    patches = series.unflatten(-1, (-1, 8))  # as the model cuts windows
    assert patches.shape == (3, 8, 8)
    assert torch.equal(patches[1, 2], series[1, 16:24])
    assert torch.equal(patches.flatten(1), series)

    enc = random_encoder("ci", seed=1, **TINY)
    raw = np.random.default_rng(0).normal(3.0, 5.0, size=(4, 64))
    norm = torch.from_numpy(normalize_windows(raw))  # the data pipeline's normalisation
    direct = enc.encoder(norm.unflatten(-1, (-1, 8)))[:, 0]
    via_encoder = enc.forward_features(torch.from_numpy(raw).float())
    torch.testing.assert_close(via_encoder, direct, atol=1e-5, rtol=1e-4)


def test_encoder_handles_any_length_and_crops_to_last_window():
    enc = random_encoder("ci", seed=0, **TINY)
    rng = np.random.default_rng(1)
    long = rng.normal(size=(2, 200)).astype(np.float32)
    emb = enc.embed(long, resize="none")
    assert emb.shape == (2, enc.dim) and np.isfinite(emb).all()
    np.testing.assert_allclose(emb, enc.embed(long[:, -64:], resize="none"), atol=1e-5)
    for resize in ("linear", "none"):
        mixed = [rng.normal(size=n) for n in (1, 5, 64, 13, 300)]
        out = enc.embed(mixed, batch_size=2, resize=resize)
        assert out.shape == (5, enc.dim) and np.isfinite(out).all()
        np.testing.assert_allclose(out[2], enc.embed(mixed[2][None, :])[0], atol=1e-5)
    with pytest.raises(ValueError, match="resize='cubic'"):
        enc.embed(long, resize="cubic")
    x = torch.randn(2, 37, requires_grad=True)
    enc.forward_features(x).pow(2).sum().backward()  # (a plain sum of a LayerNorm is constant)
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="empty"):
        enc.embed([np.zeros(0)])


def test_encoder_resize_linear_matches_numpy_interpolation_and_none_left_pads():
    enc = random_encoder("ci", seed=0, **TINY)  # window 64, patch 8
    rng = np.random.default_rng(2)
    for length in (20, 200):
        x = rng.normal(size=(3, length))
        grid = np.linspace(0.0, 1.0, 64)
        twin = np.stack([np.interp(grid, np.linspace(0.0, 1.0, length), row) for row in x])
        np.testing.assert_allclose(enc.embed(x), enc.embed(twin, resize="none"), atol=1e-4)
    short = rng.normal(size=(2, 13))  # none: normalised, then 3 copies of the first value
    z = (short - short.mean(1, keepdims=True)) / short.std(1, keepdims=True)
    z_padded = np.concatenate([np.repeat(z[:, :1], 3, axis=1), z], axis=1)
    direct = enc.encoder(torch.from_numpy(z_padded).float().unflatten(-1, (2, 8)))[:, 0]
    np.testing.assert_allclose(enc.embed(short, resize="none"), direct.detach(), atol=1e-4)


def test_random_encoder_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b = random_encoder("ci", seed=3, **TINY), random_encoder("ci", seed=3, **TINY)
    c = random_encoder("ci", seed=4, **TINY)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.encoder.embed.weight, b.encoder.embed.weight)
    assert not torch.equal(a.encoder.embed.weight, c.encoder.embed.weight)
    assert isinstance(a, SeriesEncoder) and a.dim == 16


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
    online, ema = tiny_model(0).series_proj, tiny_model(1).series_proj
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
    model = tiny_model(0)
    g = torch.Generator().manual_seed(2)
    series = torch.randn(5, 64, generator=g)
    mask = draw_patch_mask(5, 8, 0.4, g)
    batched = model(series, mask)
    assert batched.shape == (5,)
    manual = masked_series_loss_per_sample(model, series[:1], mask[:1])
    torch.testing.assert_close(manual[0], batched[0])
    params = {k: v.detach() for k, v in model.named_parameters() if k.startswith("series.")}

    def one(p, s, m):
        return torch.func.functional_call(model, p, (s[None], m[None]))[0]

    per_sample = torch.func.vmap(one, in_dims=(None, 0, 0))(params, series, mask)
    torch.testing.assert_close(per_sample, batched, atol=1e-5, rtol=1e-4)
    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, series, mask)
    assert grads["series.embed.weight"].shape == (5, 16, 8)
    no_mask = torch.zeros_like(mask)
    assert (model(series, no_mask) == 0).all()


def test_splits_are_deterministic_disjoint_and_sized():
    seeds = np.random.default_rng(0).integers(0, 2**63, size=200_000, dtype=np.uint64)
    s = split_of(seeds)
    assert np.array_equal(s, split_of(seeds.copy()))
    assert abs((s == 1).mean() - 0.01) < 0.002 and abs((s == 2).mean() - 0.01) < 0.002
    assert np.array_equal(s == 1, seeds % 1000 < 10)
    assert np.array_equal(s == 2, (seeds % 1000 >= 10) & (seeds % 1000 < 20))
    wide = split_of(seeds, val_permille=100, reference_permille=50)
    assert abs((wide == 1).mean() - 0.1) < 0.01 and abs((wide == 2).mean() - 0.05) < 0.01


def test_expression_ids_equal_iff_tokens_equal():
    tok = np.array([[49, 5, 0, 0], [49, 5, 0, 0], [49, 6, 0, 0], [5, 49, 0, 0]], np.int16)
    ids = expression_ids(tok)
    assert ids.dtype == np.int64 and (ids >= 0).all()
    assert ids[0] == ids[1] and len(set(ids[1:].tolist())) == 3


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
    a = tiny_model(0).pretrain_losses(batch, 0.4, torch.Generator().manual_seed(1))
    b = tiny_model(0).pretrain_losses(blank, 0.4, torch.Generator().manual_seed(1))
    for key in ("mts", "mlm", "t2s", "s2t"):
        torch.testing.assert_close(a[key], b[key])  # their tokens are ignored
    model = tiny_model(0)
    c = model.pretrain_losses(symbol_rows, 0.4, torch.Generator().manual_seed(1))
    assert set(model.queue_ids.tolist()) == {-1, 0, 1, 2}  # only rows with a symbol queued
    assert not torch.isclose(a["mts"], c["mts"])  # symbol-free rows do count in MTS
