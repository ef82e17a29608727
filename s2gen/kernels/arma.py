"""ARMA(p, q) excitation: the deterministic filter, a stationarity test, the sampler.

Model (Box & Jenkins sign convention, as in the SymTime paper, section 3.1):

    Y_t = sum_i phi_i Y_{t-i} + e_t - sum_j theta_j e_{t-j},   e_t ~ N(0, 1),

i.e. ``scipy.signal.lfilter(b=[1, -theta], a=[1, -phi], e)``.
"""

import numpy as np
from numba import njit

from s2gen.kernels.rng import fill_normal, randint, uniform_range

_MAX_AR_DRAWS = 10_000


@njit(cache=True)
def arma_filter(phi, theta, e, out):
    """Run the ARMA recursion over noise ``e`` from a zero start.

    Parameters
    ----------
    phi : float64[p] AR coefficients.
    theta : float64[q] MA coefficients.
    e : float64[n] innovations.
    out : float64[n], filled with Y_0..Y_{n-1} (values before t=0 are zero).
    """
    p = phi.size
    q = theta.size
    for t in range(e.size):
        acc = e[t]
        for j in range(1, min(q, t) + 1):
            acc -= theta[j - 1] * e[t - j]
        # AR terms from the oldest to Y_{t-1}: the loop-carried dependency on
        # Y_{t-1} then costs one multiply-add per step
        for i in range(min(p, t), 0, -1):
            acc += phi[i - 1] * out[t - i]
        out[t] = acc


@njit(cache=True)
def is_stationary(phi):
    """True iff every root of 1 - phi_1 z - ... - phi_p z^p lies outside |z| = 1.

    Exact test by the Schur-Cohn / Levinson step-down recursion: the AR
    polynomial is stationary iff all its reflection coefficients (partial
    autocorrelations) have modulus < 1.
    """
    p = phi.size
    a = phi.copy()
    work = np.empty(p)
    for m in range(p, 0, -1):
        k = a[m - 1]
        if not (abs(k) < 1.0):
            return False
        denom = 1.0 - k * k
        for j in range(m - 1):
            work[j] = (a[j] + k * a[m - 2 - j]) / denom
        for j in range(m - 1):
            a[j] = work[j]
    return True


@njit(cache=True)
def draw_stationary_ar(state, p):
    """phi ~ U(-1, 1)^p conditioned on stationarity (rejection sampling).

    Returns an empty array if no stationary draw came in ``_MAX_AR_DRAWS``
    tries (acceptance is above 10% for p <= 10, so this does not happen).
    """
    phi = np.empty(p)
    for _ in range(_MAX_AR_DRAWS):
        for i in range(p):
            phi[i] = uniform_range(state, -1.0, 1.0)
        if is_stationary(phi):
            return phi
    return np.empty(0)


@njit(cache=True)
def simulate_arma(state, phi, theta, burn_in, noise, work, out):
    """Fill ``out`` (float64[L]) with an ARMA(phi, theta) path after ``burn_in`` steps.

    ``noise`` and ``work`` are float64 scratch of at least ``burn_in + L`` entries.
    """
    n = burn_in + out.size
    e = noise[:n]
    y = work[:n]
    fill_normal(state, e)
    arma_filter(phi, theta, e, y)
    out[:] = y[burn_in:]


@njit(cache=True)
def sample_arma(state, max_p, max_q, burn_in, noise, work, out):
    """One ARMA channel: p ~ U{1..max_p}, q ~ U{1..max_q}, phi stationary, theta ~ U(-1, 1)^q.

    Returns False if no stationary AR polynomial was found (never in practice);
    see ``simulate_arma`` for the arguments.
    """
    p = randint(state, 1, max_p)
    q = randint(state, 1, max_q)
    phi = draw_stationary_ar(state, p)
    if phi.size == 0:
        return False
    theta = np.empty(q)
    for j in range(q):
        theta[j] = uniform_range(state, -1.0, 1.0)
    simulate_arma(state, phi, theta, burn_in, noise, work, out)
    return True
