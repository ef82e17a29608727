"""Programs to infix text (ASCII bytes) and to prefix tokens, in Numba.

Both run over whole batches so that writing a store never loops over rows in
Python. The operator templates and token ids come from the registry
(``s2gen.symbols``) as arrays, so this file knows no operator names.
"""

import numpy as np
from numba import njit, prange

from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import EXP_MIN, exponent_of, mantissa_of

CHARS_PER_NODE = 16  # no node renders to more than this many characters
TOKENS_PER_CONSTANT = 5  # sign, three mantissa digits, exponent


@njit(cache=True, inline="always")
def _write_uint(buf, n, value):
    digits = 1
    v = value
    while v >= 10:
        v //= 10
        digits += 1
    for d in range(digits - 1, -1, -1):
        buf[n + d] = 48 + value % 10
        value //= 10
    return n + digits


@njit(cache=True, inline="always")
def _write_bytes(buf, n, src, count):
    for k in range(count):
        buf[n + k] = src[k]
    return n + count


@njit(cache=True)
def _write_constant(buf, n, packed):
    """Exact decimal text; negative constants in parentheses: '73.5', '(-0.092)'."""
    mantissa = mantissa_of(packed)
    exponent = exponent_of(packed)
    if packed < 0:
        buf[n] = 40  # (
        buf[n + 1] = 45  # -
        n += 2
    if exponent >= 0:
        n = _write_uint(buf, n, mantissa * 10**exponent)
        buf[n] = 46  # .
        buf[n + 1] = 48  # 0
        n += 2
    else:
        k = -exponent
        scale = 10**k
        n = _write_uint(buf, n, mantissa // scale)
        buf[n] = 46  # .
        n += 1
        frac = mantissa % scale
        for d in range(k - 1, -1, -1):
            buf[n + d] = 48 + frac % 10
            frac //= 10
        n += k
    if packed < 0:
        buf[n] = 41  # )
        n += 1
    return n


@njit(cache=True)
def render_infix(code, arg, length, tmpl, tmpl_len, buf):
    """Write the infix form of a program into ``buf`` (uint8); return its byte count.

    ``tmpl[c, part]`` holds the ASCII of an operator's open / middle / close
    strings and ``tmpl_len[c, part]`` their lengths.
    """
    stack_code = np.empty(length + 1, np.int64)
    stack_done = np.empty(length + 1, np.int64)
    top = 0
    n = 0
    for pos in range(length):
        c = code[pos]
        if c == oc.VAR:
            buf[n] = 120  # x
            buf[n + 1] = 95  # _
            n = _write_uint(buf, n + 2, arg[pos])
        elif c == oc.CONST:
            n = _write_constant(buf, n, arg[pos])
        else:
            n = _write_bytes(buf, n, tmpl[c, 0], tmpl_len[c, 0])
            stack_code[top] = c
            stack_done[top] = 0
            top += 1
            continue
        while top > 0:  # a leaf completed: close every parent it completes
            pc = stack_code[top - 1]
            stack_done[top - 1] += 1
            if pc <= oc.LAST_BINARY and stack_done[top - 1] == 1:
                n = _write_bytes(buf, n, tmpl[pc, 1], tmpl_len[pc, 1])
                break
            n = _write_bytes(buf, n, tmpl[pc, 2], tmpl_len[pc, 2])
            top -= 1
    return n


@njit(cache=True)
def encode_tokens(code, arg, length, op_token, var_base, plus, minus, digit_base, exp_base, out):
    """Write the prefix tokens of a program into ``out`` (int16); return the count.

    A variable x_i is ``var_base + i``; a constant is five tokens: sign,
    three mantissa digits (zero padded), exponent ``exp_base + e - EXP_MIN``
    for 10**e. Entries of ``out`` past the count are left as they are. Returns -1,
    having written nothing past ``out``, if the tokens do not fit.
    """
    n = 0
    for pos in range(length):
        c = code[pos]
        if n + (TOKENS_PER_CONSTANT if c == oc.CONST else 1) > out.size:
            return -1
        if c == oc.VAR:
            out[n] = var_base + arg[pos]
            n += 1
        elif c == oc.CONST:
            mantissa = mantissa_of(arg[pos])
            out[n] = plus if arg[pos] > 0 else minus
            out[n + 1] = digit_base + mantissa // 100
            out[n + 2] = digit_base + (mantissa // 10) % 10
            out[n + 3] = digit_base + mantissa % 10
            out[n + 4] = exp_base + exponent_of(arg[pos]) - EXP_MIN
            n += 5
        else:
            out[n] = op_token[c]
            n += 1
    return n


@njit(cache=True, parallel=True)
def render_batch(code, arg, plen, n_out, tmpl, tmpl_len, buf):
    """Infix bytes of every program of a batch.

    code, arg : [n, C, P]; plen : [n, C]; n_out : [n];
    buf : uint8[n, C, W] zero-filled, receives NUL-padded ASCII.
    """
    for i in prange(code.shape[0]):
        for j in range(n_out[i]):
            render_infix(code[i, j], arg[i, j], plen[i, j], tmpl, tmpl_len, buf[i, j])


@njit(cache=True, parallel=True)
def tokens_batch(
    code, arg, plen, n_out, op_token, var_base, plus, minus, digit_base, exp_base, out
):
    """Prefix tokens of every program of a batch into zero-filled ``out`` int16[n, C, T]."""
    for i in prange(code.shape[0]):
        for j in range(n_out[i]):
            encode_tokens(
                code[i, j],
                arg[i, j],
                plen[i, j],
                op_token,
                var_base,
                plus,
                minus,
                digit_base,
                exp_base,
                out[i, j],
            )
