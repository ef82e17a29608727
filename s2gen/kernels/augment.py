"""Series augmentations: row kernels for the pair kernel, batch functions for training.

Six augmentations of one series (float64[L], z-scored when the pair kernel
calls them), each applied with its own probability. Each has a
deterministic transform, given its random numbers, and a draw of those
numbers from the row's xoshiro stream, so a pair stays a pure function of
its seed. Applied in this order (bit k of the ``augment`` mask = 1 << k):

0. ``time_warp``: the series is read at warped times tau(t), whose speed is a
   natural cubic spline through 6 evenly spaced knots ~ N(1, 0.2^2) (floored
   at 0.1), integrated by the trapezoid rule and rescaled so that tau runs
   from 0 to L - 1; linear interpolation (Um et al., 2017).
1. ``window_slice``: a window of ceil(0.9 L) points at a uniform start,
   stretched back to L points by linear interpolation (Le Guennec et al.,
   2016).
2. ``frequency``: a band of max(1, n / 10) of the n = (L - 1) // 2 interior
   Fourier bins at a uniform start; each bin's amplitude is multiplied by
   U(0.5, 1.5) and its phase shifted by U(-pi/2, pi/2) (amplitude and phase
   perturbation, Gao et al., 2020, RobustTAD). Done by a partial DFT of the
   band, so the result is real and of length L.
3. ``magnitude_warp``: multiplied by a natural cubic spline through 6 evenly
   spaced knots ~ N(1, 0.2^2) (floored at 0.1) (Um et al., 2017).
4. ``scaling``: multiplied by exp(0.2 z), z ~ N(0, 1).
5. ``jitter``: plus N(0, sigma^2) noise per point, sigma ~ U(0.01, 0.1).

In the pair kernel they act on the z-scored channel before the pair's scale
factor, so f is evaluated on the augmented, stored x. ``augment_series`` does
the same on a numpy batch (pretraining, the OATS benchmark), ``mixup`` mixes
the rows of a batch (Zhang et al., 2018).
"""

import numpy as np
from numba import njit, prange

from s2gen.config import AUGMENTATIONS
from s2gen.kernels.rng import fill_normal, new_state, normal, randint, uniform, uniform_range

TIME_WARP, WINDOW_SLICE, FREQUENCY, MAGNITUDE_WARP, SCALING, JITTER = range(6)
N_AUGMENTATIONS = 6
KNOTS = 6  # spline knots of the warps, both ends included
WARP_SIGMA = 0.2
WARP_FLOOR = 0.1
SLICE_RATIO = 0.9
BAND_SHARE = 0.1
SCALING_SIGMA = 0.2
JITTER_SIGMA = (0.01, 0.1)


@njit(cache=True)
def natural_spline(knot_values, out):
    """Natural cubic spline through ``knot_values`` at K evenly spaced points of [0, L - 1].

    Fills ``out`` (float64[L]) with its values at t = 0..L-1. The second
    derivatives M solve the tridiagonal system
    M_(i-1) + 4 M_i + M_(i+1) = 6 (y_(i+1) - 2 y_i + y_(i-1)) / h^2 with
    M_0 = M_(K-1) = 0 (Thomas algorithm).
    """
    K = knot_values.size
    L = out.size
    h = (L - 1) / (K - 1)
    m = np.zeros(K)
    diag = np.empty(K)
    rhs = np.empty(K)
    for i in range(1, K - 1):
        rhs[i] = 6.0 * (knot_values[i + 1] - 2.0 * knot_values[i] + knot_values[i - 1]) / (h * h)
        diag[i] = 4.0
    for i in range(2, K - 1):  # forward elimination (off-diagonals are 1)
        f = 1.0 / diag[i - 1]
        diag[i] -= f
        rhs[i] -= f * rhs[i - 1]
    for i in range(K - 2, 0, -1):
        m[i] = (rhs[i] - (m[i + 1] if i + 1 < K - 1 else 0.0)) / diag[i]
    for t in range(L):
        i = min(int(t / h), K - 2)
        a = (i + 1) * h - t
        b = t - i * h
        out[t] = (
            m[i] * a * a * a / (6.0 * h)
            + m[i + 1] * b * b * b / (6.0 * h)
            + (knot_values[i] / h - m[i] * h / 6.0) * a
            + (knot_values[i + 1] / h - m[i + 1] * h / 6.0) * b
        )


@njit(cache=True)
def interpolate(row, positions, out):
    """out[t] = row linearly interpolated at positions[t] in [0, L - 1], as ``np.interp``."""
    last = row.size - 1
    for t in range(positions.size):
        x = positions[t]
        if x >= last:
            out[t] = row[last]
        else:
            i = int(x)
            out[t] = (row[i + 1] - row[i]) * (x - i) + row[i]


@njit(cache=True)
def time_warp(row, speed, out):
    """out = row read at tau, the running trapezoid integral of ``speed`` rescaled to [0, L - 1]."""
    L = row.size
    tau = np.empty(L)
    tau[0] = 0.0
    for t in range(1, L):
        tau[t] = tau[t - 1] + 0.5 * (speed[t - 1] + speed[t])
    scale = (L - 1) / tau[L - 1]
    for t in range(L):
        tau[t] *= scale
    tau[L - 1] = L - 1.0  # exactly the last point, whatever the rounding
    interpolate(row, tau, out)


@njit(cache=True)
def window_slice(row, start, width, out):
    """out = row[start:start + width] stretched to L points by linear interpolation."""
    L = out.size
    positions = np.empty(L)
    for t in range(L):
        positions[t] = start + t * (width - 1) / (L - 1)
    positions[L - 1] = start + width - 1.0
    interpolate(row, positions, out)


@njit(cache=True)
def perturb_band(row, first_bin, factors, phases):
    """Multiply Fourier bins first_bin.. of ``row`` by factors * exp(i phases), in place.

    Bins are interior (0 < k < L / 2), so bin L - k changes by the conjugate
    and the series stays real: row += (2 / L) Re(sum_k dX_k e^(2 pi i k t / L)),
    with X_k = sum_t row_t e^(-2 pi i k t / L) from a table of L cosines and sines.
    """
    L = row.size
    cos_table = np.empty(L)
    sin_table = np.empty(L)
    for j in range(L):
        cos_table[j] = np.cos(2.0 * np.pi * j / L)
        sin_table[j] = np.sin(2.0 * np.pi * j / L)
    n = factors.size
    d_re = np.empty(n)
    d_im = np.empty(n)
    for b in range(n):
        k = first_bin + b
        re = 0.0
        im = 0.0
        for t in range(L):
            j = (k * t) % L
            re += row[t] * cos_table[j]
            im -= row[t] * sin_table[j]
        c = factors[b] * np.cos(phases[b]) - 1.0
        s = factors[b] * np.sin(phases[b])
        d_re[b] = re * c - im * s  # X_k (a e^(i phi) - 1)
        d_im[b] = re * s + im * c
    for t in range(L):
        acc = 0.0
        for b in range(n):
            j = ((first_bin + b) * t) % L
            acc += d_re[b] * cos_table[j] - d_im[b] * sin_table[j]
        row[t] += 2.0 * acc / L


def band_width(length: int) -> int:
    """Bins of the ``frequency`` band at length L (0 when L has no interior bin)."""
    bins = (length - 1) // 2
    return max(1, int(BAND_SHARE * bins)) if bins else 0


@njit(cache=True)
def _warp_curve(state, curve):
    knots = np.empty(KNOTS)
    for k in range(KNOTS):
        knots[k] = 1.0 + WARP_SIGMA * normal(state)
    natural_spline(knots, curve)
    for t in range(curve.size):
        curve[t] = max(curve[t], WARP_FLOOR)


@njit(cache=True)
def apply_one(state, kind, row, curve, out):
    """Draw the random numbers of augmentation ``kind`` and apply it to ``row`` in place.

    ``curve`` and ``out`` are float64 scratch of at least L entries. Returns
    False (row unchanged) when the length leaves nothing to do (L < 3 for
    ``frequency``).
    """
    L = row.size
    curve = curve[:L]
    out = out[:L]
    if kind == TIME_WARP:
        _warp_curve(state, curve)
        time_warp(row, curve, out)
        row[:] = out
    elif kind == WINDOW_SLICE:
        width = int(np.ceil(SLICE_RATIO * L))
        start = randint(state, 0, L - width)
        window_slice(row, start, width, out)
        row[:] = out
    elif kind == FREQUENCY:
        n_bins = (L - 1) // 2
        if n_bins == 0:
            return False
        width = max(1, int(BAND_SHARE * n_bins))
        first = randint(state, 1, n_bins - width + 1)
        factors = np.empty(width)
        phases = np.empty(width)
        for b in range(width):
            factors[b] = uniform_range(state, 0.5, 1.5)
            phases[b] = uniform_range(state, -0.5 * np.pi, 0.5 * np.pi)
        perturb_band(row, first, factors, phases)
    elif kind == MAGNITUDE_WARP:
        _warp_curve(state, curve)
        for t in range(L):
            row[t] *= curve[t]
    elif kind == SCALING:
        factor = np.exp(SCALING_SIGMA * normal(state))
        for t in range(L):
            row[t] *= factor
    else:
        sigma = uniform_range(state, JITTER_SIGMA[0], JITTER_SIGMA[1])
        fill_normal(state, curve)
        for t in range(L):
            row[t] += sigma * curve[t]
    return True


@njit(cache=True)
def augment_row(state, probabilities, row, curve, out):
    """Apply each augmentation k with probability ``probabilities[k]``; return the bit mask.

    A zero probability draws nothing from ``state``.
    """
    mask = 0
    for kind in range(N_AUGMENTATIONS):
        chance = probabilities[kind]
        if chance > 0.0 and uniform(state) < chance:
            if apply_one(state, kind, row, curve, out):
                mask |= 1 << kind
    return mask


@njit(cache=True, parallel=True)
def _augment_rows(x, probabilities, seeds, mask):
    n, channels, L = x.shape
    for i in prange(n):
        state = new_state(seeds[i])
        curve = np.empty(L)
        out = np.empty(L)
        for c in range(channels):
            mask[i, c] = augment_row(state, probabilities, x[i, c], curve, out)


def probability_vector(probabilities: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """float64[6] probabilities in kernel order from a name -> probability mapping."""
    unknown = sorted(set(probabilities) - set(names))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known are {', '.join(names)}")
    out = np.array([float(probabilities.get(name, 0.0)) for name in names])
    if not ((out >= 0) & (out <= 1)).all():
        raise ValueError(f"augmentation probabilities {probabilities} must lie in [0, 1]")
    return out


def augment_series(
    x: np.ndarray, probabilities: dict[str, float], seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Augment a batch of series, each channel on its own, deterministically per row seed.

    Parameters
    ----------
    x : (n, C, L) or (n, L) real series.
    probabilities : augmentation name -> probability, e.g. {"jitter": 0.5}.
    seeds : (n,) uint64, one per row (the same seed gives the same result).

    Returns
    -------
    (augmented float64 array of x's shape, uint8 mask (n, C) or (n,) of the
    augmentations applied, bit k for ``AUGMENTATIONS[k]``).
    """
    vector = probability_vector(probabilities, AUGMENTATIONS)
    values = np.array(x, dtype=np.float64, copy=True)
    flat = values[:, None, :] if values.ndim == 2 else values
    if flat.ndim != 3 or flat.shape[-1] < 2:
        raise ValueError(f"x has shape {np.shape(x)}; give (n, C, L) or (n, L) with L >= 2")
    seeds = np.ascontiguousarray(seeds, np.uint64)
    if seeds.shape != (flat.shape[0],):
        raise ValueError(f"seeds has shape {seeds.shape}; give one per row, ({flat.shape[0]},)")
    flat = np.ascontiguousarray(flat)
    mask = np.zeros(flat.shape[:2], np.uint8)
    _augment_rows(flat, vector, seeds, mask)
    if values.ndim == 2:
        return flat[:, 0], mask[:, 0]
    return flat, mask


def mixup(
    x: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix each row with a random partner: lam x[i] + (1 - lam) x[perm[i]].

    lam ~ Beta(alpha, alpha) per row, perm a random permutation.

    Returns (mixed array of x's shape and dtype, lam float64[n], perm int64[n]).
    Zhang et al. (2018), mixup; for series without their expressions (the mix
    of two outputs is no longer f of anything stored).
    """
    x = np.asarray(x)
    if not alpha > 0:
        raise ValueError(f"alpha={alpha!r} is invalid: mixup needs alpha > 0")
    n = x.shape[0]
    lam = rng.beta(alpha, alpha, size=n)
    perm = rng.permutation(n)
    shape = (n,) + (1,) * (x.ndim - 1)
    mixed = lam.reshape(shape) * x + (1.0 - lam).reshape(shape) * x[perm]
    return mixed.astype(x.dtype, copy=False), lam, perm
