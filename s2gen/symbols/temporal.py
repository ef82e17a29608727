"""Temporal operators: functions of a whole series, with their exact definitions.

In expression text they are named functions that sympy parses as undefined
functions, ``tdiff(u)``, ``tcumsum(u)``, ``tlag(u, k)``, ``tmavg(u, w)``;
``TEMPORAL_FUNCTIONS`` gives ``sympy.lambdify`` the numpy implementations
below, which are the definitions (the interpreter matches them bit for bit):

- ``tdiff(u)[t] = u[t] - u[t-1]``, and ``tdiff(u)[0] = u[1] - u[0]``;
- ``tcumsum(u)[t] = u[0] + ... + u[t]``;
- ``tlag(u, k)[t] = u[t-k]`` for t >= k, ``u[0]`` before;
- ``tmavg(u, w)[t]`` = mean of the last ``min(t + 1, w)`` values, computed from
  the running sum P as ``(P[t] - P[t-w]) / w`` (``P[t] / (t + 1)`` for t < w).

A constant argument is the constant series. The series axis is the last one.
"""

import numpy as np


def _series(u) -> np.ndarray:
    return np.array(u, dtype=np.float64, copy=True)


def tdiff(u):
    u = _series(u)
    out = np.empty_like(u)
    out[..., 1:] = u[..., 1:] - u[..., :-1]
    out[..., 0] = out[..., 1]
    return out


def tcumsum(u):
    return np.cumsum(_series(u), axis=-1)


def tlag(u, k):
    u = _series(u)
    k = int(k)
    out = np.empty_like(u)
    out[..., k:] = u[..., : u.shape[-1] - k] if k < u.shape[-1] else u[..., :0]
    out[..., :k] = u[..., :1]
    return out


def tmavg(u, w):
    w = int(w)
    prefix = np.cumsum(_series(u), axis=-1)
    out = np.empty_like(prefix)
    out[..., w:] = (prefix[..., w:] - prefix[..., :-w]) / w
    head = min(w, prefix.shape[-1])
    out[..., :head] = prefix[..., :head] / np.arange(1, head + 1)
    return out


TEMPORAL_FUNCTIONS = {"tdiff": tdiff, "tcumsum": tcumsum, "tlag": tlag, "tmavg": tmavg}
