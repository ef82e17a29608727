"""SARIMA excitation: filter and integration against scipy twins, draws against theory."""

import numpy as np
import pytest
from numba import njit
from statsmodels.tsa.arima_process import arma_acf, arma_pacf
from statsmodels.tsa.stattools import acf, adfuller, pacf

from s2gen.kernels import sarima
from s2gen.kernels.rng import fill_normal, new_state
from tests import naive

MODELS = {  # (ar, seasonal_ar, ma, seasonal_ma, s)
    "(1,0,1)(1,0,1)_12": ([1, -0.6], [1, -0.7], [1, 0.4], [1, 0.3], 12),
    "(2,0,0)(0,0,1)_7": ([1, -1.0, 0.5], [1], [1], [1, -0.5], 7),
    "(0,0,2)(2,0,0)_4": ([1], [1, -0.3, -0.4], [1, 0.5, -0.3], [1], 4),
    "(3,0,1)(1,0,0)_2": ([1, -0.5, 0.2, 0.1], [1, 0.5], [1, 0.6], [1], 2),  # lags repeat
}


def _arrays(model):
    return tuple(np.array(c, np.float64) for c in model[:4]) + (model[4],)


@pytest.mark.parametrize("step", [1, 5])
def test_lag_filter_matches_lfilter_with_spread_polynomials(step):
    ar, ma = np.array([1.0, -0.5, 0.2, 0.1]), np.array([1.0, 0.6, -0.3])
    x = np.random.default_rng(step).standard_normal(700)
    out = np.empty_like(x)
    sarima.lag_filter(ar, ma, step, x, out)
    one = np.ones(1)
    want = naive.sarima_arma_part(one, ar, one, ma, step, x)  # ar(B^step), ma(B^step)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("name", MODELS)
def test_seasonal_then_nonseasonal_filter_is_the_product_filter(name):
    ar, sar, ma, sma, s = _arrays(MODELS[name])
    e = np.random.default_rng(len(name)).standard_normal(900)
    v, w = np.empty_like(e), np.empty_like(e)
    sarima.lag_filter(sar, sma, s, e, v)
    sarima.lag_filter(ar, ma, 1, v, w)
    want = naive.sarima_arma_part(ar, sar, ma, sma, s, e)  # lfilter of the dense products
    np.testing.assert_allclose(w, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())


@pytest.mark.parametrize(
    "d, D, s", [(0, 0, 7), (1, 0, 7), (2, 0, 12), (0, 1, 12), (1, 1, 4), (0, 2, 24)]
)
def test_integration_matches_cumsum_and_differencing_undoes_it(d, D, s):
    w = np.random.default_rng(d * 10 + D).standard_normal(300)
    y = w.copy()
    sarima.integrate(y, d, D, s)
    np.testing.assert_array_equal(y, naive.sarima_integrate(w, d, D, s))
    back = y.copy()  # zero initial values: the differences of the window give w back
    for _ in range(d):
        back = np.r_[back[0], np.diff(back)]
    for _ in range(D):
        back = np.r_[back[:s], back[s:] - back[:-s]]
    np.testing.assert_allclose(back, w, atol=1e-9 * np.abs(y).max())


def test_simulation_is_the_twin_of_its_own_noise():
    ar, sar, ma, sma, s = _arrays(MODELS["(1,0,1)(1,0,1)_12"])
    burn_in, L = 200, 240
    total = sarima.BURN_IN_SEASONS * s + burn_in + L
    noise, work, out = np.empty(total), np.empty(total), np.empty(L)
    state = new_state(np.uint64(7))
    sarima.simulate_sarima(state, ar, sar, ma, sma, s, 1, 1, burn_in, noise, work, out)
    e = np.empty(total)
    fill_normal(new_state(np.uint64(7)), e)
    one = np.ones(1)
    v = naive.sarima_arma_part(one, sar, one, sma, s, e)
    w = naive.sarima_arma_part(ar, one, ma, one, s, v[-(burn_in + L) :])[burn_in:]
    np.testing.assert_allclose(out, naive.sarima_integrate(w, 1, 1, s), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("order, radius", [(1, 0.95), (2, 0.95), (3, 0.95), (2, 0.9), (4, 0.9)])
def test_drawn_polynomials_have_all_roots_beyond_one_over_the_radius(order, radius):
    state = new_state(np.uint64(order * 100 + int(radius * 100)))
    complex_seen = 0
    for _ in range(2000):
        poly = sarima.draw_lag_polynomial(state, order, radius)
        assert poly.size == order + 1 and poly[0] == 1.0 and poly[-1] != 0.0
        roots = naive.lag_polynomial_roots(poly)
        assert np.all(np.abs(roots) > 1.0 / radius - 1e-9), poly
        assert sarima.roots_outside_unit_circle(poly)
        complex_seen += np.any(np.abs(roots.imag) > 1e-12)
    if order >= 2:  # conjugate pairs are drawn with probability 1/2 while two roots remain
        assert 0.3 < complex_seen / 2000 < 0.9


def test_the_root_check_agrees_with_numpy_roots():
    rng = np.random.default_rng(3)
    for _ in range(5000):
        poly = np.r_[1.0, rng.uniform(-1.5, 1.5, rng.integers(1, 6))]
        modulus = np.abs(naive.lag_polynomial_roots(poly))
        if np.min(np.abs(modulus - 1.0)) < 1e-9:
            continue
        assert sarima.roots_outside_unit_circle(poly) == bool(np.all(modulus > 1.0)), poly


@njit(cache=True)
def _orders(seed, n, max_order, max_seasonal, max_integration, periods):
    state = new_state(np.uint64(seed))
    out = np.empty((n, 7), np.int64)
    for i in range(n):
        out[i] = sarima.draw_orders(state, max_order, max_seasonal, max_integration, periods)
    return out


def test_orders_and_periods_stay_in_their_stated_ranges():
    L = 256
    periods = sarima.fitting_periods(L)
    assert list(periods) == [s for s in sarima.CALENDAR_PERIODS if 2 * s <= L]
    assert 168 not in periods and 96 in periods  # two seasons of 168 do not fit 256 points
    o = _orders(1, 20_000, 3, 2, 2, periods)
    p, d, q, P, D, Q, s = o.T
    assert set(p) == set(q) == {0, 1, 2, 3} and set(P) == set(Q) == {0, 1, 2}
    assert set(d) == set(D) == {0, 1, 2} and (d + D <= 2).all()
    assert set(s) == set(periods) and (2 * s <= L).all()
    assert (P + D + Q > 0).all()  # every channel is seasonal
    pairs = {(a, b) for a, b in zip(d, D, strict=True)}
    assert pairs == {(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (0, 2)}
    short = _orders(2, 2000, 3, 2, 2, sarima.fitting_periods(7))  # no period fits 7 points
    assert (short[:, 3:] == 0).all() and set(short[:, 1]) == {0, 1, 2}
    strict = _orders(3, 2000, 3, 2, 1, periods)
    assert (strict[:, 1] + strict[:, 4] <= 1).all()


def _long_path(model, n, seed):
    ar, sar, ma, sma, s = _arrays(model)
    burn_in = 256
    total = sarima.BURN_IN_SEASONS * s + burn_in + n
    noise, work, out = np.empty(total), np.empty(total), np.empty(n)
    state = new_state(np.uint64(seed))
    sarima.simulate_sarima(state, ar, sar, ma, sma, s, 0, 0, burn_in, noise, work, out)
    return out, naive.seasonal_dense(ar, sar, s), naive.seasonal_dense(ma, sma, s)


def _bartlett_se(rho: np.ndarray, k: int, n: int) -> float:
    """Bartlett's standard error of the lag-k sample autocorrelation (rho from lag 0)."""
    m = rho.size - k - 1
    r = np.r_[rho[m:0:-1], rho[: m + 1]]  # rho_j for j = -m..m
    j = np.arange(-m, m + 1)
    plus = rho[np.abs(j + k)]
    minus = rho[np.abs(j - k)]
    total = r**2 + plus * minus - 4 * rho[k] * r * minus + 2 * r**2 * rho[k] ** 2
    return float(np.sqrt(total.sum() / n))


@pytest.mark.parametrize("name", list(MODELS)[:3])
def test_sample_acf_of_a_long_draw_matches_the_theoretical_acf(name):
    n = 200_000
    y, a, b = _long_path(MODELS[name], n, seed=11)
    s = MODELS[name][4]
    lags = 3 * s + 2
    rho = arma_acf(a, b, lags=3000)  # statsmodels: independent of our filter
    sample = acf(y, nlags=lags, fft=True)
    for k in range(1, lags + 1):
        se = _bartlett_se(rho, k, n)
        # about 40 lags per model: 4.5 standard errors keep the family-wise false alarm < 0.1%
        assert abs(sample[k] - rho[k]) < 4.5 * se, (k, sample[k], rho[k], se)
    assert abs(rho[s]) > 0.1  # the seasonal lag really carries correlation


def test_sample_pacf_of_a_seasonal_ar_draw_matches_theory_and_cuts_off():
    n = 200_000
    model = ([1, -0.5], [1, -0.6], [1], [1], 12)  # pure AR: PACF is 0 beyond lag p + P s = 13
    y, a, b = _long_path(model, n, seed=12)
    theory = arma_pacf(a, b, lags=40)
    sample = pacf(y, nlags=39, method="burg")
    se = 1 / np.sqrt(n)  # Quenouille: beyond the AR order the sample PACF is N(0, 1/n)
    for k in range(1, 40):
        bound = 4.5 * se if k > 13 else 6 * se  # within the order: var <= 1/n up to O(1/n)
        assert abs(sample[k] - theory[k]) < bound, (k, sample[k], theory[k])
    assert abs(theory[13]) > 0.2 and abs(theory[12]) > 0.3


def test_seasonal_random_walk_variance_grows_by_one_per_season():
    s, L, n = 7, 56, 6000
    unit = np.ones(1)
    paths = np.empty((n, L))
    noise, work = np.empty(L), np.empty(L)
    state = new_state(np.uint64(5))
    for i in range(n):
        sarima.simulate_sarima(state, unit, unit, unit, unit, s, 0, 1, 0, noise, work, paths[i])
    want = np.arange(L) // s + 1.0  # y_t is the sum of floor(t / s) + 1 unit innovations
    got = (paths**2).mean(axis=0)  # mean zero is known
    assert np.all(np.abs(got - want) < 4.5 * np.sqrt(2.0 / n) * want)


@njit(cache=True)
def _seasonal_draws(seed, n, L, s, noise, work):
    state = new_state(np.uint64(seed))
    ar = sarima.draw_lag_polynomial(state, 1, sarima.ROOT_RADIUS)
    ma = sarima.draw_lag_polynomial(state, 1, sarima.ROOT_RADIUS)
    sar = sarima.draw_lag_polynomial(state, 1, sarima.SEASONAL_ROOT_RADIUS)
    out = np.empty((n, L))
    for i in range(n):
        sarima.simulate_sarima(state, ar, sar, ma, np.ones(1), s, 0, 1, 256, noise, work, out[i])
    return out


@pytest.mark.filterwarnings("ignore:adfuller:FutureWarning")
def test_seasonal_differencing_of_a_d1_draw_is_stationary():
    s, L, n = 12, 1200, 30
    steps = sarima.seasonal_burn_in(s, 1, 0) + 256 + L
    paths = _seasonal_draws(21, n, L, s, np.empty(steps), np.empty(steps))
    raw_p = np.array([adfuller(y, maxlag=2 * s, autolag=None)[1] for y in paths])
    diff_p = np.array([adfuller(y[s:] - y[:-s], maxlag=2 * s, autolag=None)[1] for y in paths])
    # ADF with 2s lags: a unit root is not rejected on the level, and is on the difference
    assert np.mean(raw_p < 0.05) <= 0.2, raw_p
    assert np.mean(diff_p < 0.01) >= 0.9, diff_p


@njit(cache=True)
def _sample_many(seed, n, L, periods, steps):
    state = new_state(np.uint64(seed))
    noise, work = np.empty(steps), np.empty(steps)
    out = np.empty((n, L))
    ok = 0
    for i in range(n):
        ok += sarima.sample_sarima(state, 3, 2, 2, periods, 256, noise, work, out[i])
    return ok, out


@pytest.mark.parametrize("L", [8, 256, 768])
def test_the_sampler_fills_finite_varying_series_within_its_scratch(L):
    steps = sarima.max_simulated_steps(L, 256, 2)
    ok, out = _sample_many(L, 300, L, sarima.fitting_periods(L), steps)
    assert ok == 300
    assert np.isfinite(out).all() and (out.std(axis=1) > 0).all()
