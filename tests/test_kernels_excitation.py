"""Excitation kernels: ARMA and mixture, each against numpy/scipy twins and theory."""

import numpy as np
import pytest
from scipy import stats

from s2gen.kernels.arma import arma_filter, draw_stationary_ar, is_stationary, simulate_arma
from s2gen.kernels.mixture import fill_mixture
from s2gen.kernels.rng import new_state
from tests.naive import (
    ar_roots_outside_unit_circle,
    arma_autocovariance,
    arma_lfilter,
    mixture_cdf,
)


@pytest.mark.parametrize("p,q", [(1, 1), (2, 3), (3, 1), (5, 4)])
def test_arma_filter_matches_lfilter(p, q):
    rng = np.random.default_rng(p * 10 + q)
    phi = rng.uniform(-0.5, 0.5, p) / p
    theta = rng.uniform(-1, 1, q)
    e = rng.standard_normal(700)
    out = np.empty_like(e)
    arma_filter(phi, theta, e, out)
    np.testing.assert_allclose(out, arma_lfilter(phi, theta, e), rtol=1e-12, atol=1e-12)


def test_stationarity_test_agrees_with_polynomial_roots():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(10_000):
        p = rng.integers(1, 7)
        phi = rng.uniform(-1.6, 1.6, p)
        modulus = np.abs(np.roots(np.r_[-phi[::-1], 1.0]))
        if np.min(np.abs(modulus - 1.0)) < 1e-9:
            continue  # numerically on the unit circle: either answer is right
        assert is_stationary(phi) == ar_roots_outside_unit_circle(phi), phi
        checked += 1
    assert checked > 9_900


def test_paper_condition_is_not_sufficient_but_our_check_is():
    # sum(phi) < 1 and |phi_p| < 1, yet phi_2 - phi_1 >= 1 puts a root inside
    phi = np.array([-1.5, 0.5])
    assert phi.sum() < 1 and abs(phi[-1]) < 1
    assert not ar_roots_outside_unit_circle(phi)
    assert not is_stationary(phi)


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_every_accepted_ar_polynomial_is_stationary(p):
    state = new_state(np.uint64(100 + p))
    for _ in range(10_000 // 4):
        phi = draw_stationary_ar(state, p)
        assert phi.size == p
        assert ar_roots_outside_unit_circle(phi), phi


def test_accepted_ar_coefficients_are_uniform_on_the_stationary_region():
    # AR(1): the stationary part of U(-1, 1) is all of it
    state = new_state(np.uint64(9))
    phi1 = np.array([draw_stationary_ar(state, 1)[0] for _ in range(5000)])
    assert stats.kstest(phi1, stats.uniform(-1, 2).cdf).pvalue > 1e-3


@pytest.mark.parametrize(
    "phi,theta", [([0.6, -0.3], [0.4]), ([0.9], [-0.5, 0.2]), ([-0.5, 0.2, 0.3], [0.7])]
)
def test_arma_autocovariance_matches_theory(phi, theta):
    phi, theta = np.array(phi), np.array(theta)
    n_series, L, burn_in = 3000, 128, 256
    state = new_state(np.uint64(42))
    noise, work = np.empty(burn_in + L), np.empty(burn_in + L)
    series = np.empty((n_series, L))
    for i in range(n_series):
        simulate_arma(state, phi, theta, burn_in, noise, work, series[i])
    gamma = arma_autocovariance(phi, theta, max_lag=5)
    for k in range(6):
        # the mean is known (0), so the lag-k product is unbiased; its standard
        # error comes from the spread across independent series
        per_series = (series[:, : L - k] * series[:, k:]).mean(axis=1)
        se = per_series.std(ddof=1) / np.sqrt(n_series)
        assert abs(per_series.mean() - gamma[k]) < 4.5 * se, (k, per_series.mean(), gamma[k], se)
    # the burn-in puts the first stored point in the stationary regime
    first = series[:, 0]
    se0 = np.sqrt(2.0 / n_series) * gamma[0]
    assert abs(first.var() - gamma[0]) < 4.5 * se0


def _fill(weights, is_gauss, mu, sigma, segments, n, seed):
    out = np.empty(n)
    fill_mixture(
        new_state(np.uint64(seed)),
        np.cumsum(weights),
        np.array(is_gauss),
        np.array(mu, float),
        np.array(sigma, float),
        segments,
        out,
    )
    return out


MIX = dict(
    weights=[0.2, 0.5, 0.3],
    is_gauss=[True, False, True],
    mu=[-1.2, 0.8, 2.0],
    sigma=[0.3, 0.0, 0.7],
)


def test_mixture_values_follow_the_mixture_cdf():
    x = _fill(**MIX, segments=False, n=20_000, seed=1)
    cdf = mixture_cdf(MIX["weights"], MIX["is_gauss"], MIX["mu"], MIX["sigma"])
    assert stats.kstest(x, cdf).pvalue > 1e-3
    w = np.array(MIX["weights"]) / sum(MIX["weights"])
    means = np.array([-1.2, 0.4, 2.0])  # uniform between 0 and 0.8 has mean 0.4
    expected_mean = w @ means
    assert abs(x.mean() - expected_mean) < 4 * x.std() / np.sqrt(x.size)


def test_mixture_mode_interleaves_components_and_segments_mode_makes_blocks():
    # well separated components, so each value's component is known exactly
    params = dict(
        weights=[0.3, 0.3, 0.4],
        is_gauss=[True, False, True],
        mu=[-10.0, 4.0, 10.0],
        sigma=[0.5, 0.0, 0.5],
    )
    label = lambda x: np.where(x < -5, 0, np.where(x < 7, 1, 2))
    mixed = label(_fill(**params, segments=False, n=4000, seed=2))
    blocks = label(_fill(**params, segments=True, n=4000, seed=2))
    # i.i.d. labels switch with probability 1 - sum(w^2) = 0.66 per step
    assert abs(np.mean(np.diff(mixed) != 0) - 0.66) < 0.05
    # segments: one block per component, in component order
    assert np.all(np.diff(blocks) >= 0) and np.count_nonzero(np.diff(blocks)) == 2
    counts = np.bincount(blocks, minlength=3)
    expected = np.array(params["weights"]) * blocks.size
    assert stats.chisquare(counts, expected).pvalue > 1e-3
