"""The OATS batch hook on a stand-in model: selection, generation, bookkeeping, purity."""

import numpy as np
import pytest
import torch

from s2gen.oats.augment import OatsHook, sample_keys, select_top
from s2gen.oats.config import GeneratorConfig, OatsConfig
from s2gen.oats.generator import train_generator
from tests.test_oats_influence import (
    L,
    ToyMasked,
    clean_windows,
    fixed_masks,
    noise_windows,
    toy_loss,
)

TINY = dict(channels=(16, 32, 32), embed_dim=32, prototype_dim=16, prompt_channels=16)


@pytest.fixture(scope="module")
def generator():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    return train_generator(clean_windows(64, rng), GeneratorConfig(**TINY, steps=3, batch_size=8))


def make_hook(generator, reference: np.ndarray, **settings) -> OatsHook:
    cfg = OatsConfig(ddim_steps=3, **settings)
    ref_keys = np.arange(10**6, 10**6 + len(reference))
    ref = {"series": torch.as_tensor(reference, dtype=torch.float32), "mask": fixed_masks(ref_keys)}
    return OatsHook(cfg, generator, ref, toy_loss, fixed_masks, lambda step: 1e-3)


def make_batch(series: np.ndarray, rows: np.ndarray) -> dict:
    b = len(rows)
    return {
        "series": torch.as_tensor(series, dtype=torch.float32),
        "tokens": torch.arange(1, 1 + b * 5).reshape(b, 5),
        "has_symbol": torch.ones(b, dtype=torch.bool),
        "row": torch.as_tensor(rows, dtype=torch.int64),
        "channel": torch.zeros(b, dtype=torch.int64),
        "expr_id": torch.as_tensor(rows, dtype=torch.int64) + 1000,
        "weight": torch.arange(b, dtype=torch.float32),
    }


class Recorder:
    """Wraps a generator and records the guides it is given."""

    def __init__(self, generator) -> None:
        self.generator = generator
        self.guides: list[np.ndarray] = []

    def sample(self, guides, **kwargs):
        self.guides.append(None if guides is None else np.asarray(guides))
        return self.generator.sample(guides, **kwargs)


def test_select_top_keeps_the_best_scores_in_order_and_gated_ones_last():
    scores = np.array([0.1, -np.inf, 0.5, 0.3, -0.2, -np.inf])
    assert select_top(scores, 3).tolist() == [2, 3, 0]
    assert select_top(scores, 6).tolist() == [2, 3, 0, 4, 1, 5]
    assert select_top(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]


def expected_tsis(hook, model, batch, step) -> np.ndarray:
    """TSIS (B,) of a batch as the hook computes it: lr * alignment, -inf where gated."""
    aligned = hook.score(model, batch, sample_keys(batch), step)
    return np.where(hook.gated(batch["series"]), -np.inf, hook.lr_at(step) * aligned)


def test_hook_keeps_the_top_half_and_replaces_the_rest_with_generated_rows(generator):
    rng = np.random.default_rng(3)
    hook = make_hook(generator, clean_windows(32, rng), explore_prob=1.0)
    model = ToyMasked()
    batch = make_batch(clean_windows(16, rng), np.arange(16))
    expected = expected_tsis(hook, model, batch, 0)
    assert np.isneginf(expected).sum() == 4  # the default gate: the noisiest quarter
    out = hook(batch, 0, model)
    assert out["series"].shape == (16, L) and torch.isfinite(out["series"]).all()
    kept = np.sort(select_top(expected, 8))  # real rows stay in batch order
    assert torch.equal(out["series"][:8], batch["series"][kept])
    assert torch.equal(out["row"][:8], batch["row"][kept])
    assert torch.equal(out["tokens"][:8], batch["tokens"][kept])
    assert out["has_symbol"][:8].all() and not out["has_symbol"][8:].any()
    assert (out["tokens"][8:] == 0).all()  # padding only: no symbol is copied
    assert (out["row"][8:] == -1).all() and (out["expr_id"][8:] == -1).all()
    guides = select_top(expected, 8)  # one generated row per kept row, best first
    assert torch.equal(out["weight"][8:], batch["weight"][guides])  # other fields follow
    assert "sample_weight" not in out  # replace mode is unweighted, as OATS
    assert not any(torch.allclose(g, s) for g in out["series"][8:] for s in batch["series"])
    m = out["metrics"]
    assert m["oats_selected_share"] == 0.5 and m["oats_generated_share"] == 0.5
    assert m["oats_explore"] == 1.0 and m["oats_scored_share"] == 1.0
    assert m["oats_gated_share"] == 0.25
    assert m["oats_score_max"] == pytest.approx(expected.max())
    assert m["oats_score_threshold"] == pytest.approx(np.sort(expected)[-8])


def test_32_kept_rows_give_32_distinct_guides(generator):
    rng = np.random.default_rng(8)
    recorder = Recorder(generator)
    hook = make_hook(recorder, clean_windows(16, rng), explore_prob=1.0, snr_quantile=0.0)
    model = ToyMasked()
    batch = make_batch(clean_windows(64, rng), np.arange(64))
    top = select_top(expected_tsis(hook, model, batch, 0), 32)
    out = hook(batch, 0, model)
    guides = recorder.guides[-1]
    assert guides.shape == (32, L) and len(np.unique(guides, axis=0)) == 32
    np.testing.assert_array_equal(guides, batch["series"][top].double().numpy())
    assert out["series"].shape == (64, L) and (out["row"][32:] == -1).all()
    assert sorted(out["row"][:32].tolist()) == sorted(top.tolist())


def test_add_mode_leaves_the_real_rows_untouched_and_weights_the_generated_ones(generator):
    rng = np.random.default_rng(9)
    hook = make_hook(generator, clean_windows(16, rng), mix="add", generated_weight=0.3)
    model = ToyMasked()
    batch = make_batch(clean_windows(16, rng), np.arange(16))
    expected = expected_tsis(hook, model, batch, 0)
    out = hook(batch, 0, model)
    for name, value in batch.items():
        assert torch.equal(out[name][:16], value), name  # every real row, in its order
    assert out["series"].shape == (24, L)  # + one row per kept row (8 of 16 pass the gate)
    assert torch.equal(out["sample_weight"], torch.tensor([1.0] * 16 + [0.3] * 8))
    assert not out["has_symbol"][16:].any() and (out["row"][16:] == -1).all()
    assert torch.equal(out["weight"][16:], batch["weight"][select_top(expected, 8)])
    m = out["metrics"]
    assert m["oats_selected_share"] == 1.0 and m["oats_generated_share"] == 0.5
    with pytest.raises(ValueError, match="keep"):
        OatsConfig(keep=0.75)  # replace mode: a generated row replaces a removed one
    assert OatsConfig(keep=0.75, mix="add").keep == 0.75


def test_cache_keeps_raw_alignments_per_window_and_the_learning_rate_is_applied_at_use(generator):
    rng = np.random.default_rng(10)
    hook = make_hook(generator, clean_windows(16, rng), explore_prob=0.0, snr_quantile=0.0)
    hook.lr_at = lambda step: 10.0**-step  # 1 at step 0, 0.01 at step 2
    model = ToyMasked()
    batch = make_batch(clean_windows(8, rng), np.zeros(8, dtype=np.int64))  # one row ...
    batch["offset"] = torch.arange(8) * 4  # ... eight windows of it
    keys = sample_keys(batch)
    assert len(set(keys.tolist())) == 8
    other = {**batch, "offset": batch["offset"] + 1}
    assert not set(keys.tolist()) & set(sample_keys(other).tolist())
    spans = {**batch, "span": torch.full((8,), 64)}  # the same first points, other spans
    assert not set(keys.tolist()) & set(sample_keys(spans).tolist())
    first = hook(batch, 0, model)
    raw = hook.cache.lookup(keys)
    np.testing.assert_allclose(raw, hook.score(model, batch, keys, 0), rtol=1e-6)
    later = hook(batch, 2, model)  # exploit: read from the cache, scaled by lr(2)
    assert later["metrics"]["oats_scored_share"] == 0.0
    assert later["metrics"]["oats_score_max"] == pytest.approx(0.01 * raw.max())
    assert first["metrics"]["oats_score_max"] == pytest.approx(raw.max())


def test_hook_passes_batches_before_after_and_makes_one_draw_per_step(generator):
    rng = np.random.default_rng(4)
    hook = make_hook(generator, clean_windows(16, rng), explore_prob=0.0, after=3)
    model = ToyMasked()
    batch = make_batch(clean_windows(8, rng), np.arange(8))
    for step in range(3):
        assert hook(batch, step, model) is batch
    assert hook.cache.steps == 0
    first = hook(batch, 3, model)
    assert first["metrics"]["oats_scored_share"] == 1.0  # uncached: scored, not zero
    second = hook(batch, 4, model)
    assert second["metrics"]["oats_scored_share"] == 0.0  # exploit: read from the cache
    assert torch.equal(first["row"][:4], second["row"][:4])
    assert hook.cache.steps == 2 and hook.cache.scored == 8


@pytest.mark.parametrize(
    "gate, most",
    [
        (dict(snr_threshold_db=0.0, snr_quantile=0.0), 0.02),  # measured 0
        (dict(), 0.25),  # the default, the noisiest quarter of a batch: measured 0.15
    ],
)
def test_noise_windows_are_kept_as_guides_far_less_often_than_their_share(generator, gate, most):
    """Pool with 40 % structure-free windows, revisited batches, cache with p = 0.3."""
    rng = np.random.default_rng(5)
    pool = np.concatenate([clean_windows(240, rng), noise_windows(160, rng)])
    is_noise = np.arange(400) >= 240
    recorder = Recorder(generator)
    hook = make_hook(recorder, clean_windows(64, rng), explore_prob=0.3, **gate)
    model = ToyMasked()
    guides = noisy_guides = in_batch_noise = 0
    for step in range(30):
        rows = rng.choice(400, 32, replace=False)
        hook(make_batch(pool[rows], rows), step, model)
        batch = torch.as_tensor(pool[rows], dtype=torch.float32).double().numpy()
        match = (recorder.guides[-1][:, None, :] == batch[None]).all(-1)  # (guides, 32)
        assert (match.sum(1) == 1).all()
        guides += len(match)
        noisy_guides += int(is_noise[rows[match.argmax(1)]].sum())
        in_batch_noise += int(is_noise[rows].sum())
    assert in_batch_noise / (30 * 32) > 0.3
    assert guides >= 30 * 16 - 10 and noisy_guides / guides < most
    assert 0 < hook.cache.explore_steps < 30
    assert hook.cache.scored < 30 * 32  # exploit steps reused cached scores


def test_gated_samples_are_never_guides_and_the_real_rows_stay_in_their_place(generator, caplog):
    rng = np.random.default_rng(6)
    recorder = Recorder(generator)
    absolute = dict(snr_threshold_db=0.0, snr_quantile=0.0)
    hook = make_hook(recorder, clean_windows(16, rng), explore_prob=1.0, **absolute)
    model = ToyMasked()
    clean, noise = clean_windows(3, rng), noise_windows(13, rng)
    batch = make_batch(np.concatenate([clean, noise]), np.arange(16))
    with caplog.at_level("INFO", logger="s2gen.oats.augment"):
        out = hook(batch, 0, model)
    assert "5 of 8 kept rows failed the SNR gate; generating 3 rows" in caplog.text
    assert out["series"].shape == (16, L)
    assert out["metrics"]["oats_generated_share"] == 3 / 16
    assert out["metrics"]["oats_selected_share"] == 13 / 16
    assert out["metrics"]["oats_gated_share"] == pytest.approx(13 / 16)
    assert {0, 1, 2} <= set(out["row"][:13].tolist())  # the clean rows stay ...
    guides = recorder.guides[-1]
    assert len(guides) == 3  # ... and each guides exactly one generated row
    np.testing.assert_allclose(np.sort(guides, axis=0), np.sort(clean, axis=0), atol=1e-6)
    # a batch of noise only is left as it is
    batch = make_batch(noise_windows(8, rng), np.arange(100, 108))
    out = hook(batch, 1, model)
    assert torch.equal(out["series"], batch["series"]) and len(recorder.guides) == 1
    assert torch.equal(out["row"], batch["row"])
    assert out["metrics"]["oats_generated_share"] == 0.0


def test_random_selection_scores_nothing_and_still_fills_the_batch(generator):
    rng = np.random.default_rng(7)
    hook = make_hook(generator, clean_windows(8, rng), selection="random")
    batch = make_batch(noise_windows(16, rng), np.arange(16))
    out = hook(batch, 0, ToyMasked())
    assert hook.cache.steps == 0 and hook.cache.scored == 0
    assert out["metrics"]["oats_generated_share"] == 0.5 and out["series"].shape == (16, L)
    assert len(set(out["row"][:8].tolist())) == 8 and (out["row"][8:] == -1).all()


def test_augment_synthesis_needs_no_generator_and_augments_the_kept_rows():
    from s2gen.pretrain.augmentation import augment_batch

    rng = np.random.default_rng(11)
    hook = make_hook(None, clean_windows(8, rng), selection="random", synthesis="augment", seed=2)
    batch = make_batch(clean_windows(16, rng), np.arange(16))
    out = hook(batch, 5, ToyMasked())
    assert out["series"].shape == (16, L) and (out["row"][8:] == -1).all()
    kept = out["series"][:8].double().numpy()  # the random half, in batch order
    guides = batch["series"][torch.as_tensor(np.argsort(-hook_order(2, 16))[:8])]
    expected = augment_batch(guides.double().numpy(), np.random.default_rng(2 * 1_000_003 + 5))
    np.testing.assert_allclose(out["series"][8:].double().numpy(), expected, rtol=1e-6)
    assert not out["has_symbol"][8:].any() and set(map(tuple, kept)) <= set(
        map(tuple, batch["series"].double().numpy())
    )
    with pytest.raises(ValueError, match="needs a generator"):
        make_hook(None, clean_windows(8, rng), synthesis="guided")
    with pytest.raises(ValueError, match="synthesis"):
        OatsConfig(synthesis="copy")


def hook_order(seed: int, b: int) -> np.ndarray:
    """The random-selection scores of the first call of a hook of ``seed`` (larger is kept)."""
    return np.random.default_rng(seed + 1).permutation(b).astype(np.float64)


def test_unguided_synthesis_samples_without_a_prompt_in_the_kept_rows_scales(generator):
    from s2gen.oats.generator import unzscore, zscore

    rng = np.random.default_rng(12)
    recorder = Recorder(generator)
    hook = make_hook(recorder, clean_windows(8, rng), selection="random", synthesis="unguided")
    batch = make_batch(5.0 + 3.0 * clean_windows(16, rng), np.arange(16))
    out = hook(batch, 4, ToyMasked())
    assert recorder.guides == [None]  # no prompt reaches the generator
    guides = batch["series"][torch.as_tensor(np.argsort(-hook_order(0, 16))[:8])]
    _, loc, scale = zscore(guides.double().numpy())
    drawn = generator.sample(None, n=8, seed=4, ddim_steps=3, guidance_scale=1.0)
    expected = unzscore(drawn, loc, scale)
    np.testing.assert_allclose(out["series"][8:].double().numpy(), expected, rtol=1e-5, atol=1e-5)
