"""KernelSynth excitation: one draw from a Gaussian-process prior with a random kernel.

After Chronos (Ansari et al., 2024, section 4.2) and its ``kernel-synth.py``:
the bank below (periodic kernels at the usual periods, linear, RBF, rational
quadratic, white noise, constant) on t = linspace(0, 1, L); J ~ U{1..J_max}
kernels drawn with replacement, folded left with + or * (each with
probability 1/2); one draw y ~ N(0, K) per channel.

Cost. The reference draws through an SVD of K (O(L^3), 86% of its time).
Here no L x L matrix is formed. Every bank kernel but the linear one is
stationary, and so are their sums and products: a Gram matrix that is
symmetric Toeplitz, given by its lag profile. The linear kernel
sigma0^2 + t t' splits into a constant and (t t')^1, so any composite is
sum_a (t t')^a o Toeplitz(P_a) with profiles P_a folded from the bank's
profiles (cached per length), and is drawn as a sum of independent
Toeplitz draws, each by the Durbin-Levinson recursion in O(L^2): the exact
Cholesky factor applied to white noise, with jitter on the diagonal.
"""

from functools import lru_cache

import numpy as np
from numba import njit

from s2gen.kernels.rng import fill_normal, randint, uniform

PERIODIC, LINEAR, RBF, RATIONAL_QUADRATIC, WHITE, CONSTANT = range(6)
PERIODS = (24, 48, 96, 168, 336, 672, 7, 14, 30, 60, 365, 730, 4, 26, 52, 4, 6, 12, 4, 40, 10)
BANK_TYPES = np.array(
    [PERIODIC] * len(PERIODS)
    + [LINEAR] * 3
    + [RBF] * 3
    + [RATIONAL_QUADRATIC] * 3
    + [WHITE] * 3
    + [CONSTANT],
    np.int64,
)
BANK_PARAMS = np.array(
    list(PERIODS) + [0.0, 1.0, 10.0] + [0.1, 1.0, 10.0] + [0.1, 1.0, 10.0] + [0.1, 1.0, 2.0] + [1.0]
)
JITTER = 1e-6  # relative to the mean of the diagonal


@njit(cache=True)
def lag_profile(ktype, param, L):
    """k(d) for d = 0, 1/(L-1), ..., 1 of a stationary bank kernel (float64[L]).

    Periodic: exp(-2 sin^2(pi d / (param / L))) (length scale 1); RBF:
    exp(-d^2 / (2 param^2)); rational quadratic: (1 + d^2 / (2 param))^-param
    (length scale 1); white: param at d = 0; constant: 1.
    """
    out = np.empty(L)
    for k in range(L):
        d = k / (L - 1)
        if ktype == PERIODIC:
            s = np.sin(np.pi * d / (param / L))
            out[k] = np.exp(-2.0 * s * s)
        elif ktype == RBF:
            out[k] = np.exp(-d * d / (2.0 * param * param))
        elif ktype == RATIONAL_QUADRATIC:
            out[k] = (1.0 + d * d / (2.0 * param)) ** -param
        elif ktype == WHITE:
            out[k] = param if k == 0 else 0.0
        else:
            out[k] = 1.0
    return out


@njit(cache=True)
def levinson_draw(profile, z, out):
    """out = chol(T) z for the symmetric Toeplitz T with first row ``profile``.

    Durbin-Levinson: with phi the order-t prediction coefficients and v the
    prediction error variance, out[t] = sum_j phi_j out[t-j] + sqrt(v) z[t].
    This innovations form is the unique lower-triangular factor of T with a
    positive diagonal, i.e. its Cholesky factor. Returns False when a
    reflection coefficient reaches 1 (T is numerically singular).
    """
    L = out.size
    phi = np.zeros(L)
    previous = np.zeros(L)
    v = profile[0]
    if not v > 0.0:
        return False
    out[0] = np.sqrt(v) * z[0]
    for t in range(1, L):
        acc = profile[t]
        for j in range(1, t):
            acc -= previous[j] * profile[t - j]
        kappa = acc / v
        phi[t] = kappa
        for j in range(1, t):
            phi[j] = previous[j] - kappa * previous[t - j]
        v *= 1.0 - kappa * kappa
        if not v > 0.0:
            return False
        mean = 0.0
        for j in range(1, t + 1):
            mean += phi[j] * out[t - j]
        out[t] = mean + np.sqrt(v) * z[t]
        for j in range(1, t + 1):
            previous[j] = phi[j]
    return True


@njit(cache=True)
def levinson_draw_jittered(profile, z, out):
    """``levinson_draw`` of profile + eps at lag 0, eps = 1e-6 x profile[0], x10 per failure."""
    eps = JITTER * max(profile[0], 1e-12)
    work = profile.copy()
    for _ in range(6):
        work[0] = profile[0] + eps
        if levinson_draw(work, z, out):
            return True
        eps *= 10.0
    return False


@lru_cache(maxsize=8)
def bank_profiles(L: int) -> np.ndarray:
    """Lag profiles float64[K, L] of the bank at length L (zeros for the linear kernels)."""
    profiles = np.zeros((BANK_TYPES.size, L))
    for k in range(BANK_TYPES.size):
        if BANK_TYPES[k] != LINEAR:
            profiles[k] = lag_profile(BANK_TYPES[k], BANK_PARAMS[k], L)
    return profiles


@njit(cache=True)
def _load_kernel(k, types, params, profiles, parts):
    """parts[:] = bank kernel k as (t t')^a o Toeplitz(parts[a]) terms, a = 0, 1."""
    parts[:] = 0.0
    if types[k] == LINEAR:  # sigma0^2 + t t'
        parts[0] = params[k] * params[k]
        parts[1] = 1.0
    else:
        parts[0] = profiles[k]


@njit(cache=True)
def composite_parts(ids, is_product, types, params, profiles):
    """The kernel k_ids[0] (op_1) k_ids[1] (op_2) ... folded left, as float64[n + 1, L].

    Row a is the lag profile P_a of the expansion K = sum_a (t t')^a o Toeplitz(P_a):
    the linear kernel is sigma0^2 + (t t')^1 and every other bank kernel is
    stationary, so sums add rows and products convolve them in a (with the
    profiles multiplied elementwise, since Toeplitz(p) o Toeplitz(q) =
    Toeplitz(p q)). ``is_product[j]`` says whether kernel j joins by * (else +).
    """
    n = ids.size
    L = profiles.shape[1]
    acc = np.zeros((n + 1, L))
    term = np.zeros((n + 1, L))
    _load_kernel(ids[0], types, params, profiles, acc)
    for j in range(1, n):
        _load_kernel(ids[j], types, params, profiles, term)
        if is_product[j]:
            product = np.zeros((n + 1, L))
            for a in range(n):
                for b in range(2):
                    product[a + b] += acc[a] * term[b]
            acc = product
        else:
            acc += term
    return acc


@njit(cache=True)
def draw_composite(state, ids, is_product, types, params, profiles, out):
    """One draw y ~ N(0, K) of the composite kernel into ``out`` (float64[L]).

    With K = sum_a D^a Toeplitz(P_a) D^a (``composite_parts``, D = diag(t)),
    y = sum_a t^a o chol(Toeplitz(P_a)) z_a with independent z_a: a sum of
    independent Gaussians whose covariances add up to K. Each factor is
    applied by Durbin-Levinson in O(L^2); no L x L matrix is formed. Returns
    False if some P_a stays singular at the largest jitter.
    """
    L = out.size
    parts = composite_parts(ids, is_product, types, params, profiles)
    z = np.empty(L)
    draw = np.empty(L)
    out[:] = 0.0
    for a in range(parts.shape[0]):
        if parts[a, 0] <= 0.0:  # a PSD profile with P(0) = 0 is zero
            continue
        fill_normal(state, z)
        if not levinson_draw_jittered(parts[a], z, draw):
            return False
        for i in range(L):
            out[i] += (i / (L - 1)) ** a * draw[i]
    return True


@njit(cache=True)
def sample_kernelsynth(state, types, params, profiles, max_kernels, out):
    """Fill ``out`` (float64[L]) with one KernelSynth draw; False if factoring failed."""
    n = randint(state, 1, max_kernels)
    ids = np.empty(n, np.int64)
    is_product = np.zeros(n, np.bool_)  # is_product[j]: kernel j joins by *, j >= 1
    for j in range(n):
        ids[j] = randint(state, 0, types.size - 1)
        is_product[j] = j > 0 and uniform(state) < 0.5
    return draw_composite(state, ids, is_product, types, params, profiles, out)
