"""Trend x seasonality excitation, ForecastPFN-like, from integer time indices.

After ForecastPFN (Dooley et al., 2023) as the reference generator uses it
(shared/reference/s2generator.md section 3), without pandas and with the noise
really applied:

    y_t = trend_t * seasonal_t * noise_t

- a sampling frequency (minute, hour, day, week, month) sets the time step in
  days; time is tau_t = (t0 + t) * step for an integer start t0, so calendar
  phases differ between series;
- trend: (1 + a (u - o)) * exp(b (u - o')) on u = t / (L - 1), a, b ~ N(0, 0.5^2);
- seasonal: the product over calendar components c (minute of hour, hour of
  day, day of week, day of month, month of year) of
  1 + w_c * sum_h (a_h sin(2 pi h tau / P_c) + b_h cos(2 pi h tau / P_c)),
  with (a, b) ~ N(0, 1/h) normalised to unit length and w_c ~ U(0, w_max[f, c]);
- noise: 1 + s (W / E[W] - 1) with W ~ Weibull(k), k ~ U(1, 5), s ~ U(0, s_max).
"""

import math

import numpy as np
from numba import njit

from s2gen.kernels.rng import normal, randint, uniform, uniform_range

# sampling frequencies: step in days
STEP_DAYS = np.array([1.0 / 1440.0, 1.0 / 24.0, 1.0, 7.0, 30.4375])
# calendar components: period in days, number of harmonics
PERIOD_DAYS = np.array([1.0 / 24.0, 1.0, 7.0, 30.4375, 365.25])
HARMONICS = np.array([10, 10, 4, 10, 6])
MAX_HARMONICS = 10
# largest weight of each component (columns) at each frequency (rows)
WEIGHT_MAX = np.array(
    [
        [1.0, 0.2, 0.0, 0.0, 0.0],  # minute: minute of hour, hour of day
        [0.0, 1.0, 0.2, 0.0, 0.0],  # hour: hour of day, day of week
        [0.0, 0.0, 1.0, 0.2, 0.0],  # day: day of week, day of month
        [0.0, 0.0, 0.0, 0.3, 0.3],  # week: day of month, month of year
        [0.0, 0.0, 0.0, 0.0, 0.5],  # month: month of year
    ]
)
START_SPAN_DAYS = 3650.0  # start offsets cover ten years


@njit(cache=True)
def trend_season(t0, step, weights, coef_sin, coef_cos, a_lin, o_lin, a_exp, o_exp, noise, out):
    """Deterministic part: fill ``out`` (float64[L]) from given parameters.

    t0 : integer start index; step : days per index; weights : float64[C];
    coef_sin, coef_cos : float64[C, H] harmonic coefficients; noise : float64[L]
    multiplicative noise factors (ones for none).
    """
    L = out.size
    for t in range(L):
        tau = (t0 + t) * step
        u = t / (L - 1)
        value = (1.0 + a_lin * (u - o_lin)) * np.exp(a_exp * (u - o_exp))
        for c in range(weights.size):
            if weights[c] == 0.0:
                continue
            # sin/cos of h * angle by the Chebyshev recurrence
            # s_{h+1} = 2 cos(angle) s_h - s_{h-1}: two libm calls per component
            angle = 2.0 * np.pi * (tau / PERIOD_DAYS[c] - np.floor(tau / PERIOD_DAYS[c]))
            s1, c1 = np.sin(angle), np.cos(angle)
            s_prev, c_prev = 0.0, 1.0
            s_h, c_h = s1, c1
            season = 0.0
            for h in range(HARMONICS[c]):
                season += coef_sin[c, h] * s_h + coef_cos[c, h] * c_h
                s_h, s_prev = 2.0 * c1 * s_h - s_prev, s_h
                c_h, c_prev = 2.0 * c1 * c_h - c_prev, c_h
            value *= 1.0 + weights[c] * season
        out[t] = value * noise[t]


@njit(cache=True)
def draw_harmonics(state, coef_sin, coef_cos):
    """Coefficients ~ N(0, 1/h) per component, normalised to unit length."""
    for c in range(coef_sin.shape[0]):
        norm = 0.0
        for h in range(HARMONICS[c]):
            s = 1.0 / np.sqrt(h + 1.0)
            coef_sin[c, h] = s * normal(state)
            coef_cos[c, h] = s * normal(state)
            norm += coef_sin[c, h] ** 2 + coef_cos[c, h] ** 2
        norm = np.sqrt(norm)
        for h in range(HARMONICS[c]):
            coef_sin[c, h] /= norm
            coef_cos[c, h] /= norm


@njit(cache=True)
def draw_weibull_noise(state, noise_max, noise):
    """Multiplicative factors 1 + s (W / E[W] - 1) into ``noise``.

    W ~ Weibull(k) with k ~ U(1, 5), s ~ U(0, noise_max): mean one, and exactly
    one when s = 0.
    """
    k = uniform_range(state, 1.0, 5.0)
    s = uniform_range(state, 0.0, noise_max)
    mean = math.gamma(1.0 + 1.0 / k)
    for t in range(noise.size):
        w = (-np.log(1.0 - uniform(state))) ** (1.0 / k)
        noise[t] = 1.0 + s * (w / mean - 1.0)


@njit(cache=True)
def sample_trend_season(state, noise_max, out):
    """Fill ``out`` (float64[L]) with one trend x seasonality channel."""
    f = randint(state, 0, STEP_DAYS.size - 1)
    step = STEP_DAYS[f]
    t0 = np.floor(uniform(state) * START_SPAN_DAYS / step)
    n_comp = PERIOD_DAYS.size
    weights = np.empty(n_comp)
    for c in range(n_comp):
        weights[c] = uniform(state) * WEIGHT_MAX[f, c]
    coef_sin = np.zeros((n_comp, MAX_HARMONICS))
    coef_cos = np.zeros((n_comp, MAX_HARMONICS))
    draw_harmonics(state, coef_sin, coef_cos)
    a_lin = 0.5 * normal(state)
    o_lin = uniform(state)
    a_exp = 0.5 * normal(state)
    o_exp = uniform(state)
    noise = np.empty(out.size)
    draw_weibull_noise(state, noise_max, noise)
    trend_season(t0, step, weights, coef_sin, coef_cos, a_lin, o_lin, a_exp, o_exp, noise, out)
