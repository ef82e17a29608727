"""TSIS: per-sample gradients and their first-order meaning; the score cache's bookkeeping."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from s2gen.oats.cache import ScoreCache
from s2gen.oats.influence import (
    alignment,
    per_sample_gradients,
    reference_gradient,
    scored_parameters,
)

PATCH, L = 8, 64


class ToyMasked(nn.Module):
    """Stand-in for the pretraining model: forward(series (B, L), mask (B, P)) -> loss (B,)."""

    def __init__(self, d: int = 16, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        p = L // PATCH
        self.patch = PATCH
        self.embed = nn.Linear(PATCH, d)
        self.mix = nn.Linear(p, p)
        self.head = nn.Linear(d, PATCH)
        self.mask_token = nn.Parameter(torch.randn(d, generator=g) * 0.1)
        self.pos = nn.Parameter(torch.randn(p, d, generator=g) * 0.1)
        for m in (self.embed, self.mix, self.head):
            nn.init.normal_(m.weight, std=0.3, generator=g)
            nn.init.zeros_(m.bias)

    def forward(self, series: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        patches = series.unflatten(-1, (-1, self.patch))  # (B, P, patch)
        h = torch.where(mask[..., None], self.mask_token, self.embed(patches)) + self.pos
        h = torch.tanh(h)  # (B, P, d)
        h = h + self.mix(h.transpose(1, 2)).transpose(1, 2)
        err = (self.head(h) - patches).pow(2).mean(-1)  # (B, P)
        w = mask.to(err.dtype)
        return (err * w).sum(-1) / w.sum(-1).clamp_min(1.0)


def toy_loss(model, state, sample):
    """Per-sample loss for ``influence``: one sample dict without the batch dimension."""
    return functional_call(model, state, (sample["series"][None], sample["mask"][None]))[0]


def fixed_masks(keys: np.ndarray, ratio: float = 0.4) -> torch.Tensor:
    """The same patch mask for the same key every time: (m, P) bool."""
    p = L // PATCH
    rows = []
    for k in np.asarray(keys).tolist():
        noise = torch.rand(p, generator=torch.Generator().manual_seed(int(k) & 0x7FFFFFFF))
        rows.append(noise.argsort().argsort() < round(ratio * p))
    return torch.stack(rows)


def clean_windows(n: int, rng: np.random.Generator) -> np.ndarray:
    """Structured windows (n, L): noisy sines of random period and AR(0.95) paths, z-scored."""
    t = np.arange(L)
    sine = np.sin(2 * np.pi * t / rng.uniform(10, 30, (n, 1)) + rng.uniform(0, 6, (n, 1)))
    sine = sine + 0.2 * rng.standard_normal((n, L))
    e = rng.standard_normal((n, L))
    ar = np.zeros_like(e)
    for i in range(1, L):
        ar[:, i] = 0.95 * ar[:, i - 1] + e[:, i]
    x = np.where(rng.random((n, 1)) < 0.5, sine, ar)
    return (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)


def noise_windows(n: int, rng: np.random.Generator) -> np.ndarray:
    """Structure-free windows (n, L): white noise with a few large outliers."""
    x = rng.standard_normal((n, L))
    x[rng.random((n, L)) < 0.03] *= 6.0
    return x


def as_batch(series: np.ndarray, keys: np.ndarray, dtype=torch.float32) -> dict:
    return {"series": torch.as_tensor(series, dtype=dtype), "mask": fixed_masks(keys)}


def test_per_sample_gradients_equal_looped_autograd():
    model = ToyMasked()
    rng = np.random.default_rng(0)
    batch = as_batch(clean_windows(12, rng), np.arange(12))
    names = scored_parameters(model)
    fast = per_sample_gradients(model, toy_loss, batch, names)  # (12, P)
    assert fast.shape == (12, sum(p.numel() for p in model.parameters()))
    for i in range(12):
        model.zero_grad()
        model(batch["series"][i : i + 1], batch["mask"][i : i + 1])[0].backward()
        slow = torch.cat([dict(model.named_parameters())[n].grad.reshape(-1) for n in names])
        assert float((fast[i] - slow).abs().max()) < 1e-5
    # a parameter subset gives the matching columns
    head = scored_parameters(model, ("head.",))
    assert head == ["head.weight", "head.bias"]
    sub = per_sample_gradients(model, toy_loss, batch, head)
    assert torch.allclose(sub, fast[:, -sub.shape[1] :], atol=1e-6)
    with pytest.raises(ValueError, match="match no trainable parameter"):
        scored_parameters(model, ("nothing.",))


def test_one_sgd_step_on_a_sample_changes_the_reference_loss_by_minus_its_tsis():
    model = ToyMasked(seed=1).double()
    rng = np.random.default_rng(1)
    train = as_batch(clean_windows(10, rng), np.arange(10), torch.float64)
    ref = as_batch(clean_windows(64, rng), np.arange(100, 164), torch.float64)
    names = scored_parameters(model)
    lr = 1e-3
    scores = lr * alignment(
        per_sample_gradients(model, toy_loss, train, names),
        reference_gradient(model, toy_loss, ref, names),
    )
    with torch.no_grad():
        base = float(model(ref["series"], ref["mask"]).mean())
    actual = []
    for i in range(10):
        step = ToyMasked(seed=1).double()
        step.load_state_dict(model.state_dict())
        step(train["series"][i : i + 1], train["mask"][i : i + 1])[0].backward()
        with torch.no_grad():
            for p in step.parameters():
                p -= lr * p.grad
            actual.append(float(step(ref["series"], ref["mask"]).mean()) - base)
    actual, predicted = np.array(actual), -scores
    assert np.corrcoef(actual, predicted)[0, 1] > 0.95
    big = np.abs(predicted) > 0.1 * np.abs(predicted).max()
    assert big.sum() >= 3 and np.all(np.sign(actual[big]) == np.sign(predicted[big]))
    cosine = lr * alignment(
        per_sample_gradients(model, toy_loss, train, names),
        reference_gradient(model, toy_loss, ref, names),
        "cosine",
    )
    assert np.all(np.sign(cosine) == np.sign(scores)) and np.all(np.abs(cosine) <= lr + 1e-12)


def test_explore_probability_zero_never_rescores_cached_samples():
    cache = ScoreCache(explore_prob=0.0, max_age=1000, seed=0)
    calls = []

    def score_fn(where):
        calls.append(where.copy())
        return where.astype(float) + 1.0

    keys = np.array([5, 6, 7])
    for step in range(20):
        explore = cache.draw()
        scores, scored = cache.scores(keys, step, explore, score_fn)
        assert not explore and np.array_equal(scores, [1.0, 2.0, 3.0])
    assert len(calls) == 1 and cache.scored == 3 and cache.explore_steps == 0
    # an uncached sample in an exploit step is scored, the cached ones are not
    scores, scored = cache.scores(np.array([6, 99, 5]), 21, cache.draw(), score_fn)
    assert np.array_equal(scored, [False, True, False]) and np.array_equal(calls[-1], [1])
    assert np.array_equal(scores, [2.0, 2.0, 1.0])


def test_explore_probability_one_rescores_every_step():
    cache = ScoreCache(explore_prob=1.0, max_age=1000, seed=0)
    keys = np.arange(4)
    for step in range(15):
        _, scored = cache.scores(keys, step, cache.draw(), lambda w, s=step: np.full(len(w), s))
        assert scored.all()
    assert cache.explore_steps == 15 and cache.scored == 60
    assert np.all(cache.lookup(keys) == 14) and np.all(cache.age(keys, 14) == 0)


def test_explore_steps_are_binomial():
    n, p = 4000, 0.3
    counts = []
    for seed in range(3):
        cache = ScoreCache(explore_prob=p, max_age=10, seed=seed)
        counts.append(sum(cache.draw() for _ in range(n)))
    sigma = (n * p * (1 - p)) ** 0.5
    assert all(abs(c - n * p) < 4 * sigma for c in counts), counts
    assert len(set(counts)) > 1  # the seed matters
    again = ScoreCache(explore_prob=p, max_age=10, seed=0)
    assert sum(again.draw() for _ in range(n)) == counts[0]  # and fixes the draws


def test_stale_entries_are_rescored_and_fresh_ones_are_not():
    cache = ScoreCache(explore_prob=0.0, max_age=10, seed=0)
    cache.update(np.array([1, 2]), np.array([0.5, 0.7]), step=0)
    cache.update(np.array([3]), np.array([0.9]), step=5)
    need = cache.needs_scoring(np.array([1, 2, 3, 4]), step=12, explore=False)
    assert np.array_equal(need, [True, True, False, True])  # ages 12, 12, 7, uncached
    assert np.array_equal(cache.needs_scoring(np.array([1]), 10, False), [False])  # age 10 is ok
    scores, scored = cache.scores(np.array([1, 3]), 12, False, lambda w: np.full(len(w), -1.0))
    assert np.array_equal(scores, [-1.0, 0.9]) and np.array_equal(scored, [True, False])
    assert np.array_equal(cache.age(np.array([1, 3]), 12), [0, 7])
    with pytest.raises(ValueError, match="explore_prob"):
        ScoreCache(1.5, 10, 0)
