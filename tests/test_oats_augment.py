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


def test_select_top_keeps_the_best_scores_in_order_and_gated_ones_last():
    scores = np.array([0.1, -np.inf, 0.5, 0.3, -0.2, -np.inf])
    assert select_top(scores, 3).tolist() == [2, 3, 0]
    assert select_top(scores, 6).tolist() == [2, 3, 0, 4, 1, 5]
    assert select_top(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]


def test_hook_keeps_the_top_half_and_fills_the_batch_with_generated_rows(generator):
    rng = np.random.default_rng(3)
    hook = make_hook(generator, clean_windows(32, rng), explore_prob=1.0)
    model = ToyMasked()
    series = clean_windows(16, rng)
    batch = make_batch(series, np.arange(16))
    expected = hook.score(model, batch, sample_keys(batch), 0)
    out = hook(batch, 0, model)
    assert out["series"].shape == (16, L) and torch.isfinite(out["series"]).all()
    kept = select_top(expected, 8)
    assert torch.equal(out["series"][:8], batch["series"][kept])
    assert torch.equal(out["row"][:8], batch["row"][kept])
    assert torch.equal(out["tokens"][:8], batch["tokens"][kept])
    assert out["has_symbol"][:8].all() and not out["has_symbol"][8:].any()
    assert (out["tokens"][8:] == 0).all()  # padding only: no symbol is copied
    assert (out["row"][8:] == -1).all() and (out["expr_id"][8:] == -1).all()
    assert torch.equal(out["weight"][8:], batch["weight"][kept])  # other fields follow the guide
    assert not any(torch.allclose(g, s) for g in out["series"][8:] for s in batch["series"])
    m = out["metrics"]
    assert m["oats_selected_share"] == 0.5 and m["oats_generated_share"] == 0.5
    assert m["oats_explore"] == 1.0 and m["oats_scored_share"] == 1.0
    assert m["oats_score_max"] == pytest.approx(expected.max())
    assert m["oats_score_threshold"] == pytest.approx(np.sort(expected)[-8])


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


def test_noise_windows_are_kept_as_guides_far_less_often_than_their_share(generator):
    """Pool with 40 % structure-free windows, revisited batches, cache with p = 0.3."""
    rng = np.random.default_rng(5)
    pool = np.concatenate([clean_windows(240, rng), noise_windows(160, rng)])
    is_noise = np.arange(400) >= 240
    hook = make_hook(generator, clean_windows(64, rng), explore_prob=0.3)
    model = ToyMasked()
    kept_noise = kept = in_batch_noise = 0
    for step in range(30):
        rows = rng.choice(400, 32, replace=False)
        out = hook(make_batch(pool[rows], rows), step, model)
        kept_rows = out["row"][out["row"] >= 0].numpy()
        kept += len(kept_rows)
        kept_noise += int(is_noise[kept_rows].sum())
        in_batch_noise += int(is_noise[rows].sum())
    assert in_batch_noise / (30 * 32) > 0.3
    assert kept >= 30 * 16 - 5 and kept_noise / kept < 0.10  # measured 0
    assert 0 < hook.cache.explore_steps < 30
    assert hook.cache.scored < 30 * 32  # exploit steps reused cached scores


class Recorder:
    """Wraps a generator and records the guides it is given."""

    def __init__(self, generator) -> None:
        self.generator = generator
        self.guides: list[np.ndarray] = []

    def sample(self, guides, **kwargs):
        self.guides.append(np.asarray(guides))
        return self.generator.sample(guides, **kwargs)


def test_gated_samples_are_never_guides_even_when_they_fill_the_kept_half(generator):
    rng = np.random.default_rng(6)
    recorder = Recorder(generator)
    hook = make_hook(recorder, clean_windows(16, rng), explore_prob=1.0)
    model = ToyMasked()
    clean, noise = clean_windows(3, rng), noise_windows(13, rng)
    out = hook(make_batch(np.concatenate([clean, noise]), np.arange(16)), 0, model)
    assert out["series"].shape == (16, L)
    assert out["metrics"]["oats_generated_share"] == 0.5
    assert out["metrics"]["oats_gated_share"] == pytest.approx(13 / 16)
    assert sorted(out["row"][:3].tolist()) == [0, 1, 2]  # the clean rows rank first
    guides = recorder.guides[-1]
    assert len(guides) == 8
    assert all(np.any(np.all(np.isclose(g, clean, atol=1e-6), axis=1)) for g in guides)
    # a batch of noise only is left as it is
    batch = make_batch(noise_windows(8, rng), np.arange(100, 108))
    out = hook(batch, 1, model)
    assert torch.equal(out["series"], batch["series"]) and len(recorder.guides) == 1
    assert out["metrics"]["oats_generated_share"] == 0.0


def test_random_selection_scores_nothing_and_still_fills_the_batch(generator):
    rng = np.random.default_rng(7)
    hook = make_hook(generator, clean_windows(8, rng), selection="random")
    batch = make_batch(noise_windows(16, rng), np.arange(16))
    out = hook(batch, 0, ToyMasked())
    assert hook.cache.steps == 0 and hook.cache.scored == 0
    assert out["metrics"]["oats_generated_share"] == 0.5 and out["series"].shape == (16, L)
    assert len(set(out["row"][:8].tolist())) == 8 and (out["row"][8:] == -1).all()
