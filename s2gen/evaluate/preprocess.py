"""Small array helpers shared by the loaders, the protocols and the baselines.

Missing values (NaN) are filled by linear interpolation in time; series of
unequal length are brought to one length by linear interpolation where a
method needs a fixed length (the encoder itself takes any length).
"""

from collections.abc import Sequence

import numpy as np

EPS = 1e-8
# how an encoder brings a series to its window (``SeriesEncoder.forward_features``)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Fill NaN in a 1-D series by linear interpolation in time.

    Leading and trailing gaps take the nearest observed value.

    Parameters
    ----------
    values : (L,) float series, NaN where missing.

    Returns
    -------
    (L,) float64 copy without NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()
    if missing.all():
        raise ValueError("values are all missing (NaN); drop this series")
    time = np.arange(values.size)
    filled = values.copy()
    filled[missing] = np.interp(time[missing], time[~missing], values[~missing])
    return filled


def resample(values: np.ndarray, length: int) -> np.ndarray:
    """Linearly interpolate a 1-D series onto ``length`` evenly spaced points.

    Parameters
    ----------
    values : (L,) series.
    length : target length (>= 1).

    Returns
    -------
    (length,) float64; the first and last points are kept.
    """
    values = np.asarray(values, dtype=np.float64)
    if length < 1:
        raise ValueError(f"length={length} must be at least 1")
    if values.size == length:
        return values.copy()
    if values.size == 1:
        return np.full(length, values[0])
    old = np.linspace(0.0, 1.0, values.size)
    new = np.linspace(0.0, 1.0, length)
    return np.interp(new, old, values)


def resample_cases(cases: Sequence[np.ndarray], length: int | None = None) -> np.ndarray:
    """Gap-fill every channel and bring all cases to one length.

    Parameters
    ----------
    cases : n arrays of shape (C, L_i).
    length : common length; the longest L_i when None.

    Returns
    -------
    (n, C, length) float64.
    """
    if length is None:
        length = max(case.shape[1] for case in cases)
    out = np.empty((len(cases), cases[0].shape[0], length))  # (n, C, L)
    for i, case in enumerate(cases):
        for c in range(case.shape[0]):
            out[i, c] = resample(fill_gaps(case[c]), length)
    return out


def znormalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Subtract the mean and divide by the standard deviation along ``axis``.

    A constant series becomes zeros (the standard deviation is floored at 1e-8).
    """
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    return (x - mean) / np.maximum(std, EPS)
