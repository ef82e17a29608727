"""Distribution distance between sets of series: RBF-kernel MMD in a scale-free feature space.

Notes
-----
Features per series (after its own z-score): autocorrelation at lags
1..``max_lag`` and the log share of spectral power in ``bands`` equal-width
frequency bands. MMD is the biased (V-statistic) squared maximum mean
discrepancy of Gretton et al. (JMLR 2012) with a Gaussian kernel whose
bandwidth is the median pairwise feature distance of the reference set, so
that several candidate sets compared with one reference share one kernel.
"""

import numpy as np


def series_features(series: np.ndarray, max_lag: int = 40, bands: int = 8) -> np.ndarray:
    """Features (n, lags + bands) float64 of ``series`` (n, L): ACF and log band power."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 4:
        raise ValueError(f"series has shape {x.shape}; give (n, L) with L >= 4")
    length = x.shape[1]
    x = x - x.mean(axis=1, keepdims=True)
    var = (x**2).mean(axis=1)  # (n,)
    var = np.where(var > 0, var, 1.0)
    lags = min(max_lag, length // 2)
    acf = np.stack([(x[:, k:] * x[:, :-k]).mean(axis=1) / var for k in range(1, lags + 1)], 1)
    power = np.abs(np.fft.rfft(x, axis=1))[:, 1:] ** 2  # (n, L//2), without the mean
    edges = np.linspace(0, power.shape[1], bands + 1).round().astype(int)
    band = np.stack(
        [power[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], 1
    )
    share = band / np.maximum(band.sum(axis=1, keepdims=True), 1e-300)
    return np.concatenate([acf, np.log(share + 1e-6)], axis=1)


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def feature_mmd(
    candidate: np.ndarray, reference: np.ndarray, bandwidth: float | None = None
) -> float:
    """Squared MMD between series sets ``candidate`` (n, L) and ``reference`` (m, L).

    ``bandwidth`` defaults to the median pairwise feature distance within
    ``reference``. Returns a float >= 0; 0 for identical sets.
    """
    fa, fb = series_features(candidate), series_features(reference)
    dbb = _sq_dist(fb, fb)
    if bandwidth is None:
        off = dbb[~np.eye(len(fb), dtype=bool)]
        bandwidth = float(np.sqrt(np.median(off))) if off.size else 1.0
    gamma = 1.0 / (2.0 * max(bandwidth, 1e-12) ** 2)
    kaa = np.exp(-gamma * _sq_dist(fa, fa)).mean()
    kbb = np.exp(-gamma * dbb).mean()
    kab = np.exp(-gamma * _sq_dist(fa, fb)).mean()
    return float(max(kaa + kbb - 2.0 * kab, 0.0))
