"""Graph pairs: a random DAG whose roots are the inputs and whose other nodes are expressions.

A structural causal model in the CauKer style (Gaussian-process roots,
random functions of parents), built from s2gen's own parts:

1. N ~ U{min_nodes..max_nodes} nodes in topological order; the first
   R = n_in are roots, drawn by the excitation samplers (KernelSynth by
   default in graph mode) and stored as x.
2. Every other node v draws k ~ U{1..min(v, max_parents)} candidate parents
   uniformly among the nodes before it, and an expression program over
   x_0..x_(k-1) (the expression sampler with k variables). Its parents are the
   candidates its program uses, in increasing order, and its variables are
   renumbered to match: x_i of a node is its i-th parent.
3. A node's program composed over the roots is its program with every
   variable leaf replaced by its parent's composed program (a splice of prefix
   programs). A node whose composed program would exceed ``graph_cap`` nodes
   draws its program again, up to ``PROGRAM_TRIES`` times, and then becomes
   ``a + b * x_r`` of one random root r (5 nodes).
4. n_out distinct non-root nodes are the outputs; y_j is output j's value,
   and its stored program is the composed one, so y = f(x) holds over the
   stored inputs as in every store. Evaluating the composed program performs
   the same float64 operations as evaluating the nodes one by one through
   their parents, so the two agree bit for bit.

Acceptance: every non-root node must be finite and give sin/cos/tan
arguments within max_trig_arg (an inner node may be large or constant: only
its outputs are data), and every output must pass the pair checks (finite,
within max_abs, not constant) after rounding to the store dtype. The roots
are the costly part (a KernelSynth draw takes 0.1-1 ms), so a failing node
draws its program again on the same roots (and so does any later node whose
composed length no longer fits; the nodes from the failing one on are
evaluated again), up to ``PROGRAM_REDRAWS`` times, before new roots are
drawn; every program draw counts against ``max_expr_draws``.
"""

import numpy as np
from numba import njit, prange

from s2gen.kernels import opcodes as oc
from s2gen.kernels.excitation import draw_excitation
from s2gen.kernels.expression import draw_constant, sample_program
from s2gen.kernels.interpreter import evaluate
from s2gen.kernels.pairs import (
    ACCEPTED,
    EXCITATION_DRAWS,
    EXPRESSION_DRAWS,
    FAILED,
    ILL_CONDITIONED,
    NONFINITE,
    ROWS_PER_BLOCK,
    check_output,
)
from s2gen.kernels.rng import new_state, randint
from s2gen.kernels.rounding import round_value

MAX_NODES = 32  # parents are a uint32 bit mask per node
PROGRAM_TRIES = 10
PROGRAM_REDRAWS = 8  # failing nodes redrawn on one excitation draw before the next
FALLBACK_LENGTH = 5  # a + b * x_r


@njit(cache=True)
def draw_parents(state, v, max_parents, out):
    """k ~ U{1..min(v, max_parents)} distinct nodes of 0..v-1 into out[:k], sorted; returns k."""
    k = randint(state, 1, min(v, max_parents))
    pool = np.arange(v)
    for t in range(k):  # partial Fisher-Yates
        j = randint(state, t, v - 1)
        pool[t], pool[j] = pool[j], pool[t]
    chosen = np.sort(pool[:k])
    out[:k] = chosen
    return k


@njit(cache=True)
def keep_used_parents(code, arg, length, candidates, k, parents):
    """Parents = the candidates the program uses, in order; renumbers its variables; returns k."""
    new_index = np.full(k, -1, np.int64)
    for pos in range(length):
        if code[pos] == oc.VAR:
            new_index[arg[pos]] = 0
    count = 0
    for i in range(k):
        if new_index[i] == 0:
            new_index[i] = count
            parents[count] = candidates[i]
            count += 1
    for pos in range(length):
        if code[pos] == oc.VAR:
            arg[pos] = new_index[arg[pos]]
    return count


@njit(cache=True)
def composed_length(code, arg, length, parents, comp_len):
    """Nodes of a program once every variable leaf is replaced by its parent's composed program."""
    total = length
    for pos in range(length):
        if code[pos] == oc.VAR:
            total += comp_len[parents[arg[pos]]] - 1
    return total


@njit(cache=True)
def splice(code, arg, length, parents, comp_code, comp_arg, comp_len, out_code, out_arg):
    """Write the composed program into out_code/out_arg; return its length."""
    n = 0
    for pos in range(length):
        if code[pos] == oc.VAR:
            parent = parents[arg[pos]]
            m = comp_len[parent]
            out_code[n : n + m] = comp_code[parent, :m]
            out_arg[n : n + m] = comp_arg[parent, :m]
            n += m
        else:
            out_code[n] = code[pos]
            out_arg[n] = arg[pos]
            n += 1
    for k in range(n, out_code.size):
        out_code[k] = 0
        out_arg[k] = 0
    return n


@njit(cache=True)
def _node_program(state, p, v, n_roots, node, comp, stats):
    """Draw node v's program and parents, fitting its composed length; fill its composed program.

    ``node`` = (n_parents, parents, code, arg, plen) and ``comp`` =
    (code, arg, len) are the row's node arrays.
    """
    n_parents, parents, code, arg, plen = node
    comp_code, comp_arg, comp_len = comp
    candidates = np.empty(p.graph_max_parents, np.int64)
    local = np.empty(p.graph_max_parents, np.int64)
    length = 0
    used = 0
    fits = False
    for _ in range(PROGRAM_TRIES):
        k = draw_parents(state, v, p.graph_max_parents, candidates)
        length = sample_program(
            state,
            k,
            k + p.binary_offset,
            p.max_unary,
            p.const_prob,
            p.bin_codes,
            p.bin_cum,
            p.un_codes,
            p.un_cum,
            code[v],
            arg[v],
        )
        stats[EXPRESSION_DRAWS] += 1
        used = keep_used_parents(code[v], arg[v], length, candidates, k, local)
        if composed_length(code[v], arg[v], length, local, comp_len) <= p.graph_cap:
            fits = True
            break
    if not fits:  # a + b * x_r of one root
        code[v, :] = 0
        arg[v, :] = 0
        code[v, 0] = oc.ADD
        code[v, 1] = oc.CONST
        arg[v, 1] = draw_constant(state)
        code[v, 2] = oc.MUL
        code[v, 3] = oc.CONST
        arg[v, 3] = draw_constant(state)
        code[v, 4] = oc.VAR
        length = FALLBACK_LENGTH
        used = 1
        local[0] = randint(state, 0, n_roots - 1)
    plen[v] = length
    n_parents[v] = used
    parents[v, :used] = local[:used]
    comp_len[v] = splice(
        code[v],
        arg[v],
        length,
        parents[v],
        comp_code,
        comp_arg,
        comp_len,
        comp_code[v],
        comp_arg[v],
    )


@njit(cache=True)
def _refit_from(state, p, first, n_nodes, n_roots, node, comp, stats):
    """Redraw node ``first``; recompose later nodes, redrawing those that no longer fit."""
    n_parents, parents, code, arg, plen = node
    comp_code, comp_arg, comp_len = comp
    _node_program(state, p, first, n_roots, node, comp, stats)
    for v in range(first + 1, n_nodes):
        if composed_length(code[v], arg[v], plen[v], parents[v], comp_len) > p.graph_cap:
            _node_program(state, p, v, n_roots, node, comp, stats)
        else:
            comp_len[v] = splice(
                code[v], arg[v], plen[v], parents[v], comp_code, comp_arg, comp_len,
                comp_code[v], comp_arg[v],
            )  # fmt: skip


@njit(cache=True)
def _evaluate_node(p, v, node, values, local, stack, scalar, is_scalar):
    """values[v] = node v's program on its parents' values; returns the acceptance outcome."""
    n_parents, parents, code, arg, plen = node
    for i in range(n_parents[v]):
        local[i] = values[parents[v, i]]
    trig = evaluate(
        code[v], arg[v], plen[v], local[: n_parents[v]], stack, scalar, is_scalar, values[v]
    )
    for t in range(values.shape[1]):
        if not np.isfinite(values[v, t]):
            return NONFINITE
    if not trig <= p.max_trig_arg:
        return ILL_CONDITIONED
    return ACCEPTED


@njit(cache=True)
def _evaluate_from(p, first, n_nodes, outputs, node, scratch, y_out, stats):
    """Evaluate nodes first..n_nodes-1, then check and store the outputs.

    Returns -1 when all pass, else the first failing node (its cause counted
    in ``stats``).
    """
    values, local, stack, scalar, is_scalar, ybuf = (
        scratch[1], scratch[2], scratch[3], scratch[4], scratch[5], scratch[8]
    )  # fmt: skip
    for v in range(first, n_nodes):
        outcome = _evaluate_node(p, v, node, values, local, stack, scalar, is_scalar)
        if outcome != ACCEPTED:
            stats[outcome] += 1
            return v
    for j in range(outputs.size):
        for t in range(ybuf.size):
            ybuf[t] = round_value(values[outputs[j], t], p.round_mode)
        outcome = check_output(ybuf, p.max_abs, p.min_rel_std)
        if outcome != ACCEPTED:
            stats[outcome] += 1
            return outputs[j]
        y_out[j] = ybuf
    return -1


@njit(cache=True)
def generate_graph_row(p, seed, scratch, out, stats):
    """Generate one accepted graph pair into the row views of ``out``; True on success.

    ``scratch`` = (roots float64[max_in, L], values float64[max_nodes, L],
    local float64[max_parents, L], stack, scalar, is_scalar, noise, work, y
    float64[L], comp_code int8[max_nodes, cap], comp_arg int32[max_nodes, cap],
    comp_len int16[max_nodes]) with comp_* the composed programs of every
    node; ``out`` = (x, y, n_in, n_out, sampler, augmented, code, arg, plen,
    n_nodes, n_parents, parents, node_code, node_arg, node_plen, output_node)
    with the node arrays sized [max_nodes, ...].
    """
    xbuf, values, noise, work = scratch[0], scratch[1], scratch[6], scratch[7]
    comp_code, comp_arg, comp_len = scratch[9], scratch[10], scratch[11]
    (x_out, y_out, n_in_out, n_out_out, sampler, augmented, code, arg, plen, n_nodes_out,
     n_parents, parents, node_code, node_arg, node_plen, output_node) = out  # fmt: skip
    node = (n_parents, parents, node_code, node_arg, node_plen)
    comp = (comp_code, comp_arg, comp_len)
    state = new_state(seed)
    n_roots = randint(state, p.min_in, p.max_in)
    n_nodes = randint(state, p.graph_min_nodes, p.graph_max_nodes)
    n_out = randint(state, p.min_out, p.max_out)
    for r in range(n_roots):
        comp_code[r, 0] = oc.VAR
        comp_arg[r, 0] = r
        comp_len[r] = 1
    for v in range(n_roots, n_nodes):
        _node_program(state, p, v, n_roots, node, comp, stats)
    pool = np.arange(n_roots, n_nodes)
    for t in range(n_out):  # outputs: distinct non-root nodes
        j = randint(state, t, pool.size - 1)
        pool[t], pool[j] = pool[j], pool[t]
    outputs = np.sort(pool[:n_out])
    while True:  # one excitation draw per pass; failing nodes are redrawn on it first
        stats[EXCITATION_DRAWS] += 1
        if not draw_excitation(state, p, n_roots, noise, work, xbuf, sampler, augmented):
            stats[FAILED] = 1
            return False
        values[:n_roots] = xbuf[:n_roots]
        first = n_roots
        for _ in range(PROGRAM_REDRAWS + 1):
            failing = _evaluate_from(p, first, n_nodes, outputs, node, scratch, y_out, stats)
            if failing < 0:
                break
            if stats[EXPRESSION_DRAWS] >= p.max_expr_draws:
                stats[FAILED] = 1
                return False
            _refit_from(state, p, failing, n_nodes, n_roots, node, comp, stats)
            first = failing
        if failing < 0:
            break
    for c in range(n_roots):
        x_out[c] = xbuf[c]
    for j in range(n_out):
        v = outputs[j]
        plen[j] = comp_len[v]
        code[j, : comp_len[v]] = comp_code[v, : comp_len[v]]
        arg[j, : comp_len[v]] = comp_arg[v, : comp_len[v]]
        output_node[j] = v
    n_in_out[0] = n_roots
    n_out_out[0] = n_out
    n_nodes_out[0] = n_nodes
    stats[ACCEPTED] = 1
    return True


@njit(cache=True, parallel=True)
def generate_graph_rows(p, seeds, out, stats):
    """One graph pair per seed into zero-filled arrays ``out`` (see ``generate_graph_row``).

    ``out`` holds the row-major batch arrays: x [n, C_in, L], y [n, C_out, L],
    n_in, n_out [n], sampler, augmented [n, C_in], code, arg [n, C_out, cap],
    plen [n, C_out], n_nodes [n], n_parents [n, N], parents [n, N, max_parents],
    node_code, node_arg [n, N, P_node], node_plen [n, N], output_node [n, C_out]
    (N = max_nodes); stats int64[n, len(STAT_NAMES)].
    """
    n = seeds.size
    L = p.length
    n_blocks = (n + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    depth = p.node_prog_len + 1
    for b in prange(n_blocks):
        scratch = (
            np.empty((p.max_in, L)),
            np.empty((p.graph_max_nodes, L)),
            np.empty((p.graph_max_parents, L)),
            np.empty((depth, L)),
            np.empty(depth),
            np.empty(depth, np.bool_),
            np.empty(p.sim_len),
            np.empty(p.sim_len),
            np.empty(L),
            np.zeros((p.graph_max_nodes, p.graph_cap), np.int8),
            np.zeros((p.graph_max_nodes, p.graph_cap), np.int32),
            np.zeros(p.graph_max_nodes, np.int16),
        )
        for i in range(b * ROWS_PER_BLOCK, min(n, (b + 1) * ROWS_PER_BLOCK)):
            row = (
                out[0][i], out[1][i], out[2][i : i + 1], out[3][i : i + 1], out[4][i],
                out[5][i], out[6][i], out[7][i], out[8][i], out[9][i : i + 1], out[10][i],
                out[11][i], out[12][i], out[13][i], out[14][i], out[15][i],
            )  # fmt: skip
            generate_graph_row(p, seeds[i], scratch, row, stats[i])
