"""The pair kernel: X, N expression programs and Y = f(X), with rejection.

One ``prange`` over blocks of rows; each row reseeds its own RNG from its seed,
so a row is a pure function of (params, seed). Acceptance (every output):
finite, max |y| <= max_abs, std(y) >= min_rel_std * max |y| (not nearly
constant), all checked on y rounded to the store dtype, and every sin/cos/tan
argument within max_trig_arg (beyond it the value is rounding noise). A failing pair draws a
new excitation up to ``exc_retries`` times, then redraws the failing expression,
up to ``max_expr_draws`` expression draws in all. Given expressions
(``fixed_len.size > 0``) are never redrawn: only excitations, up to
``exc_retries * max_expr_draws``. Time steps are never dropped
or stitched: every stored series is one contiguous evaluation.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from s2gen.kernels.excitation import draw_excitation
from s2gen.kernels.expression import sample_program
from s2gen.kernels.interpreter import evaluate
from s2gen.kernels.rng import new_state, randint
from s2gen.kernels.rounding import round_value

# acceptance outcome of one output channel; also the columns of the stats array
ACCEPTED = 0
NONFINITE = 1
TOO_LARGE = 2
CONSTANT = 3
ILL_CONDITIONED = 4
EXPRESSION_DRAWS = 5
EXCITATION_DRAWS = 6
FAILED = 7
STAT_NAMES = (
    "accepted",
    "rejected_nonfinite",
    "rejected_too_large",
    "rejected_constant",
    "rejected_ill_conditioned",
    "expression_draws",
    "excitation_draws",
    "failed",
)

ROWS_PER_BLOCK = 32


class KernelParams(NamedTuple):
    """Flat, Numba-typed view of a GenerateConfig (built by s2gen.generators)."""

    length: int
    min_in: int
    max_in: int
    min_out: int
    max_out: int
    sampler_codes: np.ndarray
    sampler_cum: np.ndarray
    mix_kmax: int
    mix_segments: bool
    arma_pmax: int
    arma_qmax: int
    arma_burn: int
    ks_types: np.ndarray
    ks_params: np.ndarray
    ks_profiles: np.ndarray
    ks_max_kernels: int
    ts_noise_max: float
    imf_noise_level: float
    sarima_max_order: int
    sarima_max_seasonal: int
    sarima_max_integration: int
    sarima_periods: np.ndarray
    sim_len: int
    scale_max: float
    aug_any: bool
    aug_prob: np.ndarray
    binary_offset: int
    max_unary: int
    const_prob: float
    bin_codes: np.ndarray
    bin_cum: np.ndarray
    un_codes: np.ndarray
    un_cum: np.ndarray
    max_abs: float
    min_rel_std: float
    max_trig_arg: float
    exc_retries: int
    max_expr_draws: int
    round_mode: int
    prog_len: int
    fixed_code: np.ndarray
    fixed_arg: np.ndarray
    fixed_len: np.ndarray
    graph_min_nodes: int
    graph_max_nodes: int
    graph_max_parents: int
    graph_cap: int
    node_prog_len: int


@njit(cache=True)
def check_output(y, max_abs, min_rel_std):
    """Acceptance outcome of one output series (ACCEPTED or the rejection cause)."""
    peak = 0.0
    total = 0.0
    for t in range(y.size):
        v = y[t]
        if not np.isfinite(v):
            return NONFINITE
        a = abs(v)
        if a > peak:
            peak = a
        total += v
    if peak > max_abs:
        return TOO_LARGE
    mean = total / y.size
    var = 0.0
    for t in range(y.size):
        d = y[t] - mean
        var += d * d
    std = np.sqrt(var / y.size)
    if std <= 0.0 or std < min_rel_std * peak:
        return CONSTANT
    return ACCEPTED


@njit(cache=True)
def _draw_program(state, p, n_in, code, arg):
    return sample_program(
        state,
        n_in,
        n_in + p.binary_offset,
        p.max_unary,
        p.const_prob,
        p.bin_codes,
        p.bin_cum,
        p.un_codes,
        p.un_cum,
        code,
        arg,
    )


@njit(cache=True)
def _evaluate_checked(p, code, arg, length, x, stack, scalar, is_scalar, y):
    """y = f(x) rounded to the store dtype; returns the acceptance outcome."""
    trig_arg = evaluate(code, arg, length, x, stack, scalar, is_scalar, y)
    for t in range(y.size):
        y[t] = round_value(y[t], p.round_mode)
    outcome = check_output(y, p.max_abs, p.min_rel_std)
    if outcome == ACCEPTED and not trig_arg <= p.max_trig_arg:
        return ILL_CONDITIONED
    return outcome


@njit(cache=True)
def generate_row(
    p, seed, scratch, x_out, y_out, n_in_out, n_out_out, sampler, augmented, code, arg, plen, stats
):
    """Generate one accepted pair into the row views ``x_out`` ... ``stats``.

    ``scratch`` is a tuple (x, y, stack, scalar, is_scalar, noise, work) of
    float64 buffers reused across rows. Returns True on success.
    """
    xbuf, ybuf, stack, scalar, is_scalar, noise, work = scratch
    state = new_state(seed)
    n_in = randint(state, p.min_in, p.max_in)
    fixed = p.fixed_len.size > 0  # given expressions: only the excitation is drawn
    if fixed:
        n_out = p.fixed_len.size
        for j in range(n_out):
            plen[j] = p.fixed_len[j]
            code[j, : plen[j]] = p.fixed_code[j, : plen[j]]
            arg[j, : plen[j]] = p.fixed_arg[j, : plen[j]]
    else:
        n_out = randint(state, p.min_out, p.max_out)
        for j in range(n_out):
            plen[j] = _draw_program(state, p, n_in, code[j], arg[j])
    stats[EXPRESSION_DRAWS] = n_out
    while True:
        failing = -1
        for _ in range(p.exc_retries):
            stats[EXCITATION_DRAWS] += 1
            if not draw_excitation(state, p, n_in, noise, work, xbuf, sampler, augmented):
                stats[FAILED] = 1
                return False
            failing = -1
            for j in range(n_out):
                outcome = _evaluate_checked(
                    p, code[j], arg[j], plen[j], xbuf[:n_in], stack, scalar, is_scalar, ybuf
                )
                if outcome != ACCEPTED:
                    stats[outcome] += 1
                    failing = j
                    break
                y_out[j] = ybuf
            if failing < 0:
                break
        if failing < 0:
            break
        if fixed:
            if stats[EXCITATION_DRAWS] >= p.exc_retries * p.max_expr_draws:
                stats[FAILED] = 1
                return False
            continue
        if stats[EXPRESSION_DRAWS] >= p.max_expr_draws:
            stats[FAILED] = 1
            return False
        plen[failing] = _draw_program(state, p, n_in, code[failing], arg[failing])
        stats[EXPRESSION_DRAWS] += 1
    for c in range(n_in):
        x_out[c] = xbuf[c]
    n_in_out[0] = n_in
    n_out_out[0] = n_out
    stats[ACCEPTED] = 1
    return True


@njit(cache=True, parallel=True)
def generate_rows(p, seeds, x_out, y_out, n_in, n_out, sampler, augmented, code, arg, plen, stats):
    """Generate one pair per seed into zero-filled output arrays.

    Shapes: seeds uint64[n]; x_out float32[n, C_in, L]; y_out float32[n, C_out, L];
    n_in, n_out uint8[n]; sampler, augmented uint8[n, C_in]; code int8[n, C_out, P];
    arg int32[n, C_out, P]; plen int16[n, C_out]; stats int64[n, len(STAT_NAMES)].
    """
    n = seeds.size
    L = p.length
    n_blocks = (n + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    depth = p.prog_len + 1
    for b in prange(n_blocks):
        scratch = (
            np.empty((p.max_in, L)),
            np.empty(L),
            np.empty((depth, L)),
            np.empty(depth),
            np.empty(depth, np.bool_),
            np.empty(p.sim_len),
            np.empty(p.sim_len),
        )
        for i in range(b * ROWS_PER_BLOCK, min(n, (b + 1) * ROWS_PER_BLOCK)):
            generate_row(
                p,
                seeds[i],
                scratch,
                x_out[i],
                y_out[i],
                n_in[i : i + 1],
                n_out[i : i + 1],
                sampler[i],
                augmented[i],
                code[i],
                arg[i],
                plen[i],
                stats[i],
            )


@njit(cache=True, parallel=True)
def programs_rows(p, seeds, n_vars, code, arg, plen):
    """One expression program per seed over ``n_vars`` variables (no X, no rejection).

    Shapes: seeds uint64[n]; code int8[n, P]; arg int32[n, P]; plen int16[n].
    """
    for i in prange(seeds.size):
        state = new_state(seeds[i])
        plen[i] = _draw_program(state, p, n_vars, code[i], arg[i])
