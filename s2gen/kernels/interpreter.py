"""Evaluate an expression program over whole series in float64.

Besides f(x), ``evaluate`` reports the largest |argument| given to sin, cos or
tan: beyond ~1e4 the result depends on the last bits of the argument (its ULP
approaches the period), so two correct evaluations in a different operation
order disagree. The generator rejects such pairs; the function stays pure.

The program is read right to left with a stack of operands. An operand is a
scalar (a constant, or an operator applied to scalars only) or a vector of L
values; a scalar is broadcast into its stack row only when it meets a vector.
Domain rules are part of the function: sqrt(|u|), log(|u|); division and
inversion follow IEEE (1/0 = inf). Kernels use ``error_model="numpy"`` so that
a division by zero yields inf/nan instead of raising.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import value_of


@njit(cache=True, inline="always", error_model="numpy")
def unary_scalar(c, v):
    """Apply unary opcode ``c`` to a float64."""
    if c == oc.INV:
        return 1.0 / v
    if c == oc.SQRT:
        return np.sqrt(abs(v))
    if c == oc.POW2:
        return v * v
    if c == oc.POW3:
        return v**3.0  # libm pow, one rounding, as numpy's u**3
    if c == oc.ABS:
        return abs(v)
    if c == oc.LOG:
        return np.log(abs(v))
    if c == oc.EXP:
        return np.exp(v)
    if c == oc.SIN:
        return np.sin(v)
    if c == oc.COS:
        return np.cos(v)
    if c == oc.TAN:
        return np.tan(v)
    if c == oc.ARCTAN:
        return np.arctan(v)
    if c == oc.ARCSIN:
        return np.arcsin(v)
    if c == oc.ARCCOS:
        return np.arccos(v)
    return np.nan


@njit(cache=True, inline="always", error_model="numpy")
def binary_scalar(c, a, b):
    """Apply binary opcode ``c`` to float64 operands (a is the left one)."""
    if c == oc.ADD:
        return a + b
    if c == oc.SUB:
        return a - b
    if c == oc.MUL:
        return a * b
    if c == oc.DIV:
        return a / b
    return np.nan


@njit(cache=True, inline="always")
def is_periodic(c):
    """True for the trigonometric opcodes whose argument conditioning is tracked."""
    return c == oc.SIN or c == oc.COS or c == oc.TAN


@njit(cache=True)
def max_abs(row):
    """Largest |value| of ``row`` (nan if any value is nan)."""
    peak = 0.0
    for t in range(row.size):
        a = abs(row[t])
        if not a <= peak:
            peak = a
    return peak


@njit(cache=True)
def lag_inplace(row, k):
    """row[t] <- row[t-k] for t >= k, row[0] before (edge value repeated)."""
    L = row.size
    first = row[0]
    for t in range(L - 1, k - 1, -1):
        row[t] = row[t - k]
    for t in range(min(k, L)):
        row[t] = first


@njit(cache=True)
def moving_average_inplace(row, w):
    """Trailing mean over the last min(t + 1, w) points, via prefix sums."""
    for t in range(1, row.size):
        row[t] += row[t - 1]
    for t in range(row.size - 1, -1, -1):
        row[t] = (row[t] - row[t - w]) / w if t >= w else row[t] / (t + 1)


@njit(cache=True)
def temporal_inplace(c, row):
    """Apply temporal opcode ``c`` along ``row`` (see ``s2gen.symbols.temporal``)."""
    if c == oc.DIFF:
        for t in range(row.size - 1, 0, -1):
            row[t] -= row[t - 1]
        row[0] = row[1]
    elif c == oc.CUMSUM:
        for t in range(1, row.size):
            row[t] += row[t - 1]
    elif c == oc.LAG1:
        lag_inplace(row, 1)
    elif c == oc.LAG4:
        lag_inplace(row, 4)
    elif c == oc.LAG16:
        lag_inplace(row, 16)
    elif c == oc.MAVG4:
        moving_average_inplace(row, 4)
    else:
        moving_average_inplace(row, 16)


@njit(cache=True, error_model="numpy")
def unary_inplace(c, row):
    """Apply unary opcode ``c`` to every element of ``row``.

    The dispatch sits outside the loops so that LLVM vectorises the cheap
    operators; the transcendental ones share one generic loop.
    """
    if c >= oc.FIRST_TEMPORAL:
        temporal_inplace(c, row)
    elif c == oc.INV:
        for t in range(row.size):
            row[t] = 1.0 / row[t]
    elif c == oc.SQRT:
        for t in range(row.size):
            row[t] = np.sqrt(abs(row[t]))
    elif c == oc.POW2:
        for t in range(row.size):
            row[t] = row[t] * row[t]
    elif c == oc.ABS:
        for t in range(row.size):
            row[t] = abs(row[t])
    else:
        for t in range(row.size):
            row[t] = unary_scalar(c, row[t])


def _at(v, t):
    """v[t] for an array, v for a scalar (compiled by the overload below)."""
    return v[t] if isinstance(v, np.ndarray) else v


@overload(_at, inline="always")
def _at_overload(v, t):
    if isinstance(v, types.Array):
        return lambda v, t: v[t]
    return lambda v, t: v


@njit(cache=True, error_model="numpy")
def binary_into(c, a, b, out):
    """out = a (op c) b elementwise; ``a`` or ``b`` may be a scalar, ``out`` may alias."""
    if c == oc.ADD:
        for t in range(out.size):
            out[t] = _at(a, t) + _at(b, t)
    elif c == oc.SUB:
        for t in range(out.size):
            out[t] = _at(a, t) - _at(b, t)
    elif c == oc.MUL:
        for t in range(out.size):
            out[t] = _at(a, t) * _at(b, t)
    else:
        for t in range(out.size):
            out[t] = _at(a, t) / _at(b, t)


@njit(cache=True, error_model="numpy")
def evaluate(code, arg, length, x, stack, scalar, is_scalar, out):
    """Evaluate program ``code[:length]``/``arg[:length]`` on inputs ``x``.

    Parameters
    ----------
    code, arg : program arrays (see ``opcodes``).
    x : float64[M, L] input channels.
    stack : float64[D, L] scratch, D >= length.
    scalar : float64[D], is_scalar : bool[D] scratch.
    out : float64[L], receives f(x).

    Returns
    -------
    float : the largest |argument| of sin/cos/tan (0 if the program has none).
    """
    sp = 0
    trig_arg = 0.0
    for pos in range(length - 1, -1, -1):
        c = code[pos]
        if c == oc.VAR:
            stack[sp, :] = x[arg[pos]]
            is_scalar[sp] = False
            sp += 1
        elif c == oc.CONST:
            scalar[sp] = value_of(arg[pos])
            is_scalar[sp] = True
            sp += 1
        elif c >= oc.FIRST_UNARY:
            top = sp - 1
            if is_scalar[top] and c >= oc.FIRST_TEMPORAL:  # a constant series, then in time
                stack[top, :] = scalar[top]
                is_scalar[top] = False
            if is_scalar[top]:
                if is_periodic(c):
                    trig_arg = max(trig_arg, abs(scalar[top]))
                scalar[top] = unary_scalar(c, scalar[top])
            else:
                if is_periodic(c):
                    trig_arg = max(trig_arg, max_abs(stack[top]))
                unary_inplace(c, stack[top])
        else:
            left = sp - 1
            right = sp - 2
            if is_scalar[left] and is_scalar[right]:
                scalar[right] = binary_scalar(c, scalar[left], scalar[right])
            elif is_scalar[left]:
                binary_into(c, scalar[left], stack[right], stack[right])
            elif is_scalar[right]:
                binary_into(c, stack[left], scalar[right], stack[right])
            else:
                binary_into(c, stack[left], stack[right], stack[right])
            is_scalar[right] = is_scalar[left] and is_scalar[right]
            sp -= 1
    if is_scalar[0]:
        out[:] = scalar[0]
    else:
        out[:] = stack[0]
    return trig_arg
