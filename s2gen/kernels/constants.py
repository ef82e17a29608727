"""Decimal constants of expression programs, packed into one integer.

A constant is ``sign * mantissa * 10**exponent`` with mantissa in 1..999 and
exponent in [EXP_MIN, EXP_MAX]; it is stored in a program's ``arg`` as
``sign * (mantissa * 16 + exponent - EXP_MIN)``. Its float64 value is
``mantissa * 10**exponent`` computed with one correctly rounded operation, so it
equals Python's ``float`` of the constant's decimal text, and the text (and
the tokens) hold the constant exactly. The sampler draws exponents -3..-1;
user expressions may use the whole range.
"""

import numpy as np
from numba import njit

EXP_MIN = -8
EXP_MAX = 7
MANTISSA_MAX = 999
_POW10 = np.array([10.0**k for k in range(EXP_MAX - EXP_MIN + 1)])


@njit(cache=True, inline="always")
def pack(sign, mantissa, exponent):
    """Packed form of sign * mantissa * 10**exponent (sign is +1 or -1)."""
    return sign * (mantissa * 16 + exponent - EXP_MIN)


@njit(cache=True, inline="always")
def mantissa_of(packed):
    """Mantissa (1..999) of a packed constant."""
    return abs(packed) // 16


@njit(cache=True, inline="always")
def exponent_of(packed):
    """Decimal exponent of a packed constant."""
    return abs(packed) % 16 + EXP_MIN


@njit(cache=True, inline="always")
def value_of(packed):
    """Float64 value of a packed constant."""
    m = mantissa_of(packed)
    e = exponent_of(packed)
    v = m * _POW10[e] if e >= 0 else m / _POW10[-e]
    return v if packed > 0 else -v


def text_of(packed: int) -> str:
    """Exact decimal text of a packed constant, without parentheses ('-0.092', '12000.0')."""
    m, e = int(mantissa_of(packed)), int(exponent_of(packed))
    if e >= 0:
        text = f"{m * 10**e}.0"
    else:
        k = -e
        text = f"{m // 10**k}.{m % 10**k:0{k}d}"
    return text if packed > 0 else "-" + text


def from_decimal(text: str) -> int | None:
    """Packed constant of a decimal string, or None if it is not exactly representable."""
    from decimal import Decimal, InvalidOperation

    try:
        d = Decimal(text).normalize()
    except InvalidOperation:
        return None
    if not d.is_finite() or d == 0:
        return None
    sign, digits, exponent = d.as_tuple()
    mantissa = int("".join(map(str, digits)))
    while mantissa % 10 == 0 and mantissa:  # normalize() already strips; kept for safety
        mantissa //= 10
        exponent += 1
    while exponent > EXP_MAX and mantissa * 10 <= MANTISSA_MAX:
        mantissa *= 10
        exponent -= 1
    if mantissa > MANTISSA_MAX or not EXP_MIN <= exponent <= EXP_MAX:
        return None
    return int(pack(-1 if sign else 1, mantissa, exponent))
