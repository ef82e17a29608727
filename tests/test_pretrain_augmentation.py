"""Static batch augmentation (the OATS benchmark's jitter + mixup arm) against theory."""

import numpy as np
import pytest
from scipy import stats

from s2gen.pretrain.augmentation import JITTER_SIGMA, augment_batch, jitter, mixup


def test_jitter_adds_its_sigma_squared_to_each_rows_variance():
    rng = np.random.default_rng(0)
    n, length = 40, 20_000
    z = rng.standard_normal((n, length))
    sigma = np.linspace(0.05, 0.5, n)
    out = jitter(z, sigma, rng)
    added = (out - z).var(axis=1)  # (n,): the noise alone
    se = sigma**2 * np.sqrt(2.0 / length)  # standard error of a variance estimate
    assert np.all(np.abs(added - sigma**2) < 4 * se)
    grown = out.var(axis=1) - z.var(axis=1)  # noise independent of the row: Var adds up
    assert np.all(np.abs(grown - sigma**2) < 4 * np.sqrt(2.0 / length) * (1 + sigma**2))


def test_mixup_keeps_the_batch_and_mixes_two_rows_with_a_beta_weight():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4000, 16))
    mixed, lam, perm = mixup(z, 0.4, np.random.default_rng(2))
    assert mixed.shape == z.shape
    assert sorted(perm.tolist()) == list(range(len(z)))  # a permutation: every row a partner
    np.testing.assert_allclose(mixed, lam[:, None] * z + (1 - lam[:, None]) * z[perm], atol=0)
    assert stats.kstest(lam, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3
    again, lam2, perm2 = mixup(z, 0.4, np.random.default_rng(2))
    assert np.array_equal(again, mixed) and np.array_equal(lam2, lam)
    with pytest.raises(ValueError, match="alpha"):
        mixup(z, 0.0, rng)


def test_augment_batch_keeps_shape_dtype_and_each_rows_scale_and_is_seeded():
    rng = np.random.default_rng(3)
    loc = rng.normal(0, 100, size=64)
    scale = rng.uniform(0.1, 50, size=64)
    t = np.linspace(0, 6 * np.pi, 128)
    x = (np.sin(t)[None, :] * scale[:, None] + loc[:, None]).astype(np.float32)
    out = augment_batch(x, np.random.default_rng(4))
    assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, augment_batch(x, np.random.default_rng(4)))
    assert not np.array_equal(out, augment_batch(x, np.random.default_rng(5)))
    # every row is a mix of unit-variance sines (all in phase here) plus small noise, in its own
    # mean and scale: the mean stays and the spread is at most the row's own
    np.testing.assert_allclose(out.mean(axis=1), loc, atol=0.05 * scale.max())
    top = np.sqrt(1 + JITTER_SIGMA[1] ** 2)
    assert np.all(out.std(axis=1) <= scale * top * 1.05)
    with pytest.raises(ValueError, match="finite"):
        augment_batch(np.full((2, 8), np.nan), np.random.default_rng(0))
