"""Seasonal ARIMA(p, d, q)(P, D, Q)_s excitation: polynomials, filter, integration, sampler.

Model, in lag-polynomial form (the form of ``scipy.signal.lfilter`` and of
statsmodels' ``arma_acf``; Box & Jenkins, chapter 9):

    a(B) A(B^s) (1 - B)^d (1 - B^s)^D y_t = b(B) M(B^s) e_t,   e_t ~ N(0, 1),

with a(B) = 1 + a_1 B + ... + a_p B^p (so phi_i = -a_i in Box & Jenkins'
signs), A of degree P in B^s, b of degree q and M of degree Q.

The draw (after SarSim0-style generators: real-calendar periods, random
stationary and invertible polynomials, integration on top):

- the period s is uniform over ``CALENDAR_PERIODS`` with 2 s <= L, so the
  stored window holds at least two seasons; when none fits (L < 8) the model
  is a plain ARIMA(p, d, q);
- p, q ~ U{0..max_order}; P, Q ~ U{0..max_seasonal_order}; (d, D) uniform
  over the pairs with d, D in 0..2 and d + D <= max_integration (2 by
  default: a third integration makes the z-scored window a smooth curve in
  which the innovations no longer show); with a period, (P, D, Q) are drawn
  again until one is positive, so every channel of this family is seasonal;
- each polynomial is the product of its factors (1 - z B) over roots z drawn
  inside the disc of radius r_max: a conjugate pair r e^(+-i w) with
  r = r_max sqrt(u) (uniform on the disc) and w ~ U(0, pi) with probability
  1/2 while two roots are left, else a real root ~ U(-r_max, r_max). The
  roots of the lag polynomial are the 1/z, outside the unit circle: AR
  factors are stationary and MA factors invertible by construction, and
  both are checked by the Schur-Cohn step-down test (``arma.is_stationary``).
  r_max is 0.95 for a and b, and 0.85 for A and M (as polynomials in B^s).

Simulation, by two filters from a zero start (they commute, so together they
are the filter of the product polynomials): the seasonal part
v = M(B^s) / A(B^s) e, then the nonseasonal part w = b(B) / a(B) v over the
last burn_in + L values of v, of which the first burn_in (the configured ARMA
burn-in) are dropped. The seasonal filter runs 30 more seasons when P > 0:
its start-up transient decays like r^k (P = 1) or k r^k (a double root)
after k seasons, so the variance the first stored value lacks is at most
6e-5 (P = 1) or 0.3% (P = 2, both roots at |z| = 0.85) of the stationary
variance; with P = 0 it runs Q more seasons, after which the seasonal MA
part is exact. The window is then integrated from
zero initial values, y = (1 - B^s)^-D (1 - B)^-d w, by cumulative sums (as R's
``arima.sim`` does), so differencing the stored series recovers w exactly.
"""

import numpy as np
from numba import njit

from s2gen.kernels.arma import is_stationary
from s2gen.kernels.rng import fill_normal, randint, uniform, uniform_range

# periods of real calendars: quarters/year, weekdays, days/week, months/year,
# hours/day, half-hours/day, weeks/year, minutes/hour, quarter-hours/day,
# ten-minutes/day, hours/week, five-minutes/day, half-hours/week, days/year
CALENDAR_PERIODS = (4, 5, 7, 12, 24, 48, 52, 60, 96, 144, 168, 288, 336, 365)
MAX_INTEGRATION = 2  # d and D are each at most this
ROOT_RADIUS = 0.95  # largest |root| of 1/a and 1/b: stationary / invertible with margin
SEASONAL_ROOT_RADIUS = 0.85  # the same for A and M, in the variable B^s
BURN_IN_SEASONS = 30  # extra burn-in with a seasonal AR part


def fitting_periods(length: int) -> np.ndarray:
    """int64 calendar periods s with at least two seasons in ``length`` points (2 s <= L)."""
    return np.array([s for s in CALENDAR_PERIODS if 2 * s <= length], np.int64)


def max_simulated_steps(length: int, burn_in: int, max_seasonal_order: int) -> int:
    """Most innovations ``sample_sarima`` draws at this length (its scratch size)."""
    periods = fitting_periods(length)
    longest = int(periods.max()) if periods.size else 0
    seasons = BURN_IN_SEASONS if max_seasonal_order > 0 else 0
    return burn_in + max(seasons, max_seasonal_order) * longest + length


@njit(cache=True)
def seasonal_burn_in(s, seasonal_ar_order, seasonal_ma_order):
    """Extra steps of the seasonal filter before the nonseasonal burn-in (module notes)."""
    if seasonal_ar_order > 0:
        return BURN_IN_SEASONS * s
    return seasonal_ma_order * s


@njit(cache=True)
def draw_lag_polynomial(state, order, r_max):
    """float64[order + 1]: prod (1 - z B) over ``order`` random roots |z| < r_max (lag 0 first)."""
    poly = np.zeros(order + 1)
    poly[0] = 1.0
    degree = 0
    while degree < order:
        if order - degree >= 2 and uniform(state) < 0.5:
            r = r_max * np.sqrt(uniform(state))
            w = uniform_range(state, 0.0, np.pi)
            c1 = -2.0 * r * np.cos(w)  # (1 - z B)(1 - conj(z) B) = 1 + c1 B + c2 B^2
            c2 = r * r
            for i in range(degree + 2, 0, -1):
                poly[i] += c1 * poly[i - 1] + (c2 * poly[i - 2] if i >= 2 else 0.0)
            degree += 2
        else:
            z = uniform_range(state, -r_max, r_max)
            for i in range(degree + 1, 0, -1):
                poly[i] -= z * poly[i - 1]
            degree += 1
    return poly


@njit(cache=True)
def roots_outside_unit_circle(poly):
    """True iff every root of the lag polynomial ``poly`` (poly[0] = 1) has |root| > 1."""
    return is_stationary(-poly[1:])


@njit(cache=True)
def lag_filter(ar, ma, step, x, out):
    """ar(B^step) out = ma(B^step) x from a zero start (ar[0] = ma[0] = 1).

    out_t = sum_j ma_j x_(t - j step) - sum_(i >= 1) ar_i out_(t - i step):
    ``scipy.signal.lfilter(ma, ar, x)`` with the polynomials spread to lags
    that are multiples of ``step``, at one multiply-add per coefficient.
    """
    span = max(ar.size, ma.size) * step
    for t in range(x.size):
        acc = 0.0
        if t >= span:  # the steady state, without bounds checks
            for j in range(ma.size):
                acc += ma[j] * x[t - j * step]
            for i in range(1, ar.size):
                acc -= ar[i] * out[t - i * step]
        else:
            for j in range(ma.size):
                if j * step <= t:
                    acc += ma[j] * x[t - j * step]
            for i in range(1, ar.size):
                if i * step <= t:
                    acc -= ar[i] * out[t - i * step]
        out[t] = acc


@njit(cache=True)
def integrate(row, d, D, s):
    """row <- (1 - B^s)^-D (1 - B)^-d row in place, from zero initial values."""
    for _ in range(D):
        for t in range(s, row.size):
            row[t] += row[t - s]
    for _ in range(d):
        for t in range(1, row.size):
            row[t] += row[t - 1]


@njit(cache=True)
def simulate_sarima(state, ar, seasonal_ar, ma, seasonal_ma, s, d, D, burn_in, noise, work, out):
    """Fill ``out`` (float64[L]) with one SARIMA path of the given lag polynomials.

    Two filters from a zero start, which commute: the seasonal one,
    v = M(B^s) / A(B^s) e, over ``seasonal_burn_in(s, P, Q) + burn_in + L``
    innovations, then the nonseasonal one, w = b(B) / a(B) v, over the last
    ``burn_in + L`` values of v; the last L values of w are integrated d
    times and seasonally D times. ``noise`` and ``work`` are float64 scratch
    of at least ``simulated_steps`` entries.
    """
    L = out.size
    tail = burn_in + L
    total = seasonal_burn_in(s, seasonal_ar.size - 1, seasonal_ma.size - 1) + tail
    e = noise[:total]
    v = work[:total]
    fill_normal(state, e)
    lag_filter(seasonal_ar, seasonal_ma, max(s, 1), e, v)
    w = noise[:tail]  # the innovations are spent: reuse their buffer
    lag_filter(ar, ma, 1, v[total - tail :], w)
    out[:] = w[burn_in:]
    integrate(out, d, D, s)


@njit(cache=True)
def draw_orders(state, max_order, max_seasonal_order, max_integration, periods):
    """(p, d, q, P, D, Q, s) of one channel (see the module notes); s = 0 without a period."""
    p = randint(state, 0, max_order)
    q = randint(state, 0, max_order)
    top = min(MAX_INTEGRATION, max_integration)
    if periods.size == 0:
        return p, randint(state, 0, top), q, 0, 0, 0, 0
    s = periods[randint(state, 0, periods.size - 1)]
    can_be_seasonal = max_seasonal_order > 0 or max_integration > 0
    while True:
        d = randint(state, 0, top)
        D = randint(state, 0, top)
        P = randint(state, 0, max_seasonal_order)
        Q = randint(state, 0, max_seasonal_order)
        if d + D <= max_integration and (P + D + Q > 0 or not can_be_seasonal):
            return p, d, q, P, D, Q, s


@njit(cache=True)
def sample_sarima(
    state, max_order, max_seasonal_order, max_integration, periods, burn_in, noise, work, out
):
    """One SARIMA channel into ``out`` (float64[L]); False if a polynomial failed its check.

    ``periods`` are the calendar periods that fit L (``fitting_periods``);
    ``noise`` and ``work`` hold at least ``max_simulated_steps`` entries.
    """
    p, d, q, P, D, Q, s = draw_orders(
        state, max_order, max_seasonal_order, max_integration, periods
    )
    ar = draw_lag_polynomial(state, p, ROOT_RADIUS)
    ma = draw_lag_polynomial(state, q, ROOT_RADIUS)
    seasonal_ar = draw_lag_polynomial(state, P, SEASONAL_ROOT_RADIUS)
    seasonal_ma = draw_lag_polynomial(state, Q, SEASONAL_ROOT_RADIUS)
    for poly in (ar, ma, seasonal_ar, seasonal_ma):
        if not roots_outside_unit_circle(poly):
            return False
    if seasonal_burn_in(s, P, Q) + burn_in + out.size > noise.size:
        return False
    simulate_sarima(state, ar, seasonal_ar, ma, seasonal_ma, s, d, D, burn_in, noise, work, out)
    return True
