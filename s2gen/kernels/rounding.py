"""Round float64 values onto the grid of the store dtype, inside Numba.

Numba has no float16 type, so half precision is rounded by hand: round half to
even at the spacing of the value's binade, subnormals at 2**-24, overflow to
inf. The result equals ``np.float64(np.float16(v))`` (tested against numpy).
"""

import math

import numpy as np
from numba import njit

ROUND_NONE = 0
ROUND_FLOAT32 = 1
ROUND_FLOAT16 = 2
MODES = {"float64": ROUND_NONE, "float32": ROUND_FLOAT32, "float16": ROUND_FLOAT16}

_HALF_MIN_NORMAL = 2.0**-14
_HALF_SUBNORMAL_STEP = 2.0**-24
_HALF_OVERFLOW = 65520.0  # halfway between 65504 (max half) and 65536: ties go to inf


@njit(cache=True, inline="always")
def round_half(v):
    """float64 -> nearest float16 value, as float64."""
    a = abs(v)
    if not (a < _HALF_OVERFLOW):  # inf, nan or overflow
        return v if a != a else math.copysign(np.inf, v)
    if a < _HALF_MIN_NORMAL:
        step = _HALF_SUBNORMAL_STEP
    else:
        _, e = math.frexp(a)  # a = m * 2**e, m in [0.5, 1)
        step = math.ldexp(1.0, e - 11)
    return math.copysign(np.rint(a / step) * step, v)


@njit(cache=True, inline="always")
def round_value(v, mode):
    """Round ``v`` to the float32 or float16 grid (mode 0 leaves it)."""
    if mode == ROUND_FLOAT32:
        return np.float64(np.float32(v))
    if mode == ROUND_FLOAT16:
        return round_half(v)
    return v


@njit(cache=True)
def round_array(values, mode):
    """Round a float64 array in place (see ``round_value``)."""
    flat = values.ravel()
    for k in range(flat.size):
        flat[k] = round_value(flat[k], mode)
