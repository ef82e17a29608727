"""Dynamic time warping in a Sakoe-Chiba band, in Numba: distances and 1-NN search.

The cost of an alignment is the sum of squared differences of the aligned
points (no square root; the nearest neighbour does not change). A
multichannel case aligns all its channels together (DTW_D, the dependent
variant of Shokoohi-Yekta et al., "Generalizing DTW to the multi-dimensional
case", 2017): the cost of aligning point i with point j is the squared
Euclidean distance between the two C-vectors. The band admits the cells with
|i - j| <= window (Sakoe & Chiba, 1978); window 0 is the squared Euclidean
distance, window L - 1 unconstrained DTW.

``dtw_nearest`` abandons a candidate as soon as every cell of a row of its
cost matrix exceeds the best cost found so far; costs are non-negative, so
such a candidate cannot win, and the result equals the argmin of the full
distance matrix (the first index among equal costs).
"""

import numpy as np
from numba import njit, prange

from s2gen.threads import torch_threads_kept


@njit(cache=True)
def _band_cost(x, y, window, cutoff, prev, curr):
    """DTW_D cost of x, y (C, L) in the band; inf once a whole row exceeds cutoff.

    prev and curr are (L + 1,) float64 work rows.
    """
    n_channels, length = x.shape
    prev[:] = np.inf
    prev[0] = 0.0
    for i in range(1, length + 1):
        curr[:] = np.inf
        low = max(1, i - window)
        high = min(length, i + window)
        row_min = np.inf
        for j in range(low, high + 1):
            step = 0.0
            for c in range(n_channels):
                diff = x[c, i - 1] - y[c, j - 1]
                step += diff * diff
            best = min(prev[j - 1], prev[j], curr[j - 1])
            curr[j] = step + best
            row_min = min(row_min, curr[j])
        if row_min > cutoff:
            return np.inf
        prev, curr = curr, prev
    return prev[length]


@njit(cache=True, parallel=True)
def _pairwise(a, b, window, out):
    for i in prange(a.shape[0]):
        prev = np.empty(a.shape[2] + 1)
        curr = np.empty(a.shape[2] + 1)
        for j in range(b.shape[0]):
            out[i, j] = _band_cost(a[i], b[j], window, np.inf, prev, curr)


@njit(cache=True, parallel=True)
def _nearest(train, test, window, index, cost):
    for i in prange(test.shape[0]):
        prev = np.empty(test.shape[2] + 1)
        curr = np.empty(test.shape[2] + 1)
        best, where = np.inf, -1
        for j in range(train.shape[0]):
            found = _band_cost(test[i], train[j], window, best, prev, curr)
            if found < best:
                best, where = found, j
        index[i] = where
        cost[i] = best


def _check_panels(a: np.ndarray, b: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    for name, panel in (("a", a), ("b", b)):
        if panel.ndim != 3 or 0 in panel.shape:
            raise ValueError(
                f"{name} must have shape (n, C, L) with n, C, L >= 1, got {panel.shape}"
            )
        if not np.isfinite(panel).all():
            raise ValueError(f"{name} holds NaN or inf; fill gaps first (preprocess.fill_gaps)")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"cases of shape {a.shape[1:]} and {b.shape[1:]} differ: DTW here needs one "
            "channel count and one length (preprocess.resample_cases)"
        )
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
        raise ValueError(f"window={window!r} must be a whole number >= 0")
    return a, b


@torch_threads_kept()  # evaluation runs torch encoders in the same process
def dtw_distances(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    """DTW_D cost of every case of ``a`` against every case of ``b``.

    Parameters
    ----------
    a, b : (n_a, C, L), (n_b, C, L) float cases, no NaN.
    window : Sakoe-Chiba band half-width in points.

    Returns
    -------
    (n_a, n_b) float64 sums of squared differences along the best path.
    """
    a, b = _check_panels(a, b, window)
    out = np.empty((a.shape[0], b.shape[0]))
    _pairwise(a, b, int(window), out)
    return out


@torch_threads_kept()
def dtw_nearest(train: np.ndarray, test: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The nearest train case of every test case under DTW_D, with early abandoning.

    Parameters
    ----------
    train, test : (n_train, C, L), (n_test, C, L) float cases, no NaN.
    window : Sakoe-Chiba band half-width in points.

    Returns
    -------
    (n_test,) int64 index of the nearest train case (the first among equal
    costs) and (n_test,) float64 its cost.
    """
    train, test = _check_panels(train, test, window)
    index = np.empty(test.shape[0], dtype=np.int64)
    cost = np.empty(test.shape[0])
    _nearest(train, test, int(window), index, cost)
    return index, cost
