"""Random expression programs, sampled inside Numba.

The construction follows Lample & Charton (2019) as the reference generator
uses it (shared/reference/s2generator.md section 2), with its bugs removed:

1. ``nb ~ U{0..max_binary}`` binary and ``nu ~ U{0..max_unary}`` unary operators.
2. A binary skeleton with ``nb`` operators, uniform over tree shapes: a random
   arrangement of ``nb`` operators and ``nb + 1`` leaves, rotated to its unique
   valid prefix word (the cycle lemma). Operators are drawn by weight.
3. Leaves: the first ``min(M, nb + 1)`` leaves (in random order) get distinct
   variables, so an output uses every input when it has enough leaves and at
   least one always; every further leaf is a decimal constant with probability
   ``const_prob``, else a random variable. There is no ``rand`` leaf and no
   empty leaf.
4. Unary operators wrap ``min(nu, #candidates)`` distinct skeleton nodes drawn
   among the subtrees that contain a variable and have fewer than
   ``MAX_UNARY_SUBTREE`` tokens (the reference's ``max_unary_depth``); unlike the
   reference, the root is a candidate too.
5. Affine prefactors: a child of add/sub (and the root) becomes ``c*child``, a
   unary argument becomes ``a + b*arg`` (unless it is itself an add/sub, whose
   children already carry factors), and the root gets an offset ``a0 + ...``.

Constants are ``sign * mantissa * 10**e`` with mantissa ~ U{1..999} and
e ~ U{-3, -2, -1}, packed as described in ``s2gen.kernels.constants``.
"""

import numpy as np
from numba import njit

from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import pack
from s2gen.kernels.rng import choice, randint, uniform

MAX_UNARY_SUBTREE = 6
_ROOT = -1


def max_program_length(max_binary: int, max_unary: int) -> int:
    """Upper bound on the nodes of a sampled program.

    Skeleton 2B+1, a factor (mul, const) on both children of each binary node
    (4B), unary plus affine argument (5U), root offset and factor (4).
    """
    return 6 * max_binary + 5 * max_unary + 5


def max_constants(max_binary: int, max_unary: int) -> int:
    """Upper bound on the constants of a sampled program."""
    return 3 * max_binary + 2 * max_unary + 3


@njit(cache=True, inline="always")
def draw_constant(state):
    """A packed decimal constant: sign * U{1..999} * 10**U{-3..-1}."""
    sign = 1 if uniform(state) < 0.5 else -1
    mantissa = randint(state, 1, 999)
    exponent = randint(state, -3, -1)
    return pack(sign, mantissa, exponent)


@njit(cache=True, inline="always")
def _shuffle(state, a):
    for i in range(a.size - 1, 0, -1):
        j = randint(state, 0, i)
        tmp = a[i]
        a[i] = a[j]
        a[j] = tmp


@njit(cache=True)
def random_skeleton(state, n_ops):
    """Prefix word of a uniformly random binary tree with ``n_ops`` operators.

    Returns int64[2 n_ops + 1] with 1 for an operator and 0 for a leaf.
    Cycle lemma: of the 2n+1 rotations of any arrangement of n operators (+1)
    and n+1 leaves (-1), exactly one is a valid prefix word: the one starting
    right after the first minimum of the prefix sums.
    """
    size = 2 * n_ops + 1
    steps = np.empty(size, np.int64)
    for i in range(size):
        steps[i] = 1 if i < n_ops else -1
    _shuffle(state, steps)
    total = 0
    best = size + 1
    best_i = 0
    for i in range(size):
        total += steps[i]
        if total < best:
            best = total
            best_i = i
    kinds = np.empty(size, np.int64)
    for i in range(size):
        kinds[i] = 1 if steps[(best_i + 1 + i) % size] == 1 else 0
    return kinds


@njit(cache=True)
def subtree_facts(kinds, skel_code):
    """Per position of a binary prefix word: subtree token count, and whether it has a variable."""
    size = kinds.size
    sizes = np.empty(size, np.int64)
    has_var = np.empty(size, np.bool_)
    stack_size = np.empty(size, np.int64)
    stack_var = np.empty(size, np.bool_)
    top = 0
    for i in range(size - 1, -1, -1):
        if kinds[i] == 0:
            sizes[i] = 1
            has_var[i] = skel_code[i] == oc.VAR
        else:
            top -= 2
            sizes[i] = 1 + stack_size[top] + stack_size[top + 1]
            has_var[i] = stack_var[top] or stack_var[top + 1]
        stack_size[top] = sizes[i]
        stack_var[top] = has_var[i]
        top += 1
    return sizes, has_var


@njit(cache=True, inline="always")
def _emit(code, arg, n, c, a):
    code[n] = c
    arg[n] = a
    return n + 1


@njit(cache=True)
def sample_program(
    state,
    n_vars,
    max_binary,
    max_unary,
    const_prob,
    bin_codes,
    bin_cum,
    un_codes,
    un_cum,
    code,
    arg,
):
    """Sample one expression program into ``code``/``arg`` and return its length.

    Parameters
    ----------
    state : xoshiro state of the row.
    n_vars : number of input channels M (variables x_0..x_{M-1}).
    max_binary, max_unary : ranges of the operator counts.
    const_prob : probability that a leaf beyond the first M is a constant.
    bin_codes, bin_cum : binary opcodes and their cumulative weights.
    un_codes, un_cum : unary opcodes and their cumulative weights.
    code : int8[P], arg : int32[P] with P >= ``max_program_length``; entries
        past the returned length are set to 0.
    """
    nb = randint(state, 0, max_binary)
    nu = randint(state, 0, max_unary)
    kinds = random_skeleton(state, nb)
    size = kinds.size

    skel_code = np.empty(size, np.int64)
    skel_arg = np.zeros(size, np.int64)
    n_leaves = nb + 1
    leaf_code = np.empty(n_leaves, np.int64)
    leaf_arg = np.empty(n_leaves, np.int64)
    variables = np.arange(n_vars)
    _shuffle(state, variables)
    for t in range(n_leaves):
        if t < n_vars:
            leaf_code[t] = oc.VAR
            leaf_arg[t] = variables[t]
        elif uniform(state) < const_prob:
            leaf_code[t] = oc.CONST
            leaf_arg[t] = draw_constant(state)
        else:
            leaf_code[t] = oc.VAR
            leaf_arg[t] = randint(state, 0, n_vars - 1)
    order = np.arange(n_leaves)
    _shuffle(state, order)
    leaf = 0
    for i in range(size):
        if kinds[i] == 1:
            skel_code[i] = bin_codes[choice(state, bin_cum)]
        else:
            skel_code[i] = leaf_code[order[leaf]]
            skel_arg[i] = leaf_arg[order[leaf]]
            leaf += 1

    sizes, has_var = subtree_facts(kinds, skel_code)
    candidates = np.empty(size, np.int64)
    n_cand = 0
    for i in range(size):
        if sizes[i] < MAX_UNARY_SUBTREE and has_var[i]:
            candidates[n_cand] = i
            n_cand += 1
    unary = np.zeros(size, np.int64)
    n_unary = min(nu, n_cand)
    for t in range(n_unary):  # partial Fisher-Yates: n_unary distinct candidates
        j = randint(state, t, n_cand - 1)
        tmp = candidates[t]
        candidates[t] = candidates[j]
        candidates[j] = tmp
        unary[candidates[t]] = un_codes[choice(state, un_cum)]

    parents = np.empty(size + 1, np.int64)
    top = 0
    parents[top] = _ROOT
    top += 1
    n = 0
    for i in range(size):
        top -= 1
        parent = parents[top]
        c = skel_code[i]
        u = unary[i]
        node_addsub = c == oc.ADD or c == oc.SUB
        if parent == _ROOT:
            n = _emit(code, arg, n, oc.ADD, 0)
            n = _emit(code, arg, n, oc.CONST, draw_constant(state))
        wants_factor = parent == _ROOT or parent == oc.ADD or parent == oc.SUB
        bare_const = c == oc.CONST and u == 0
        if wants_factor and not (u == 0 and node_addsub) and not bare_const:
            n = _emit(code, arg, n, oc.MUL, 0)
            n = _emit(code, arg, n, oc.CONST, draw_constant(state))
        if u != 0:
            n = _emit(code, arg, n, u, 0)
            if not node_addsub:
                n = _emit(code, arg, n, oc.ADD, 0)
                n = _emit(code, arg, n, oc.CONST, draw_constant(state))
                n = _emit(code, arg, n, oc.MUL, 0)
                n = _emit(code, arg, n, oc.CONST, draw_constant(state))
        n = _emit(code, arg, n, c, skel_arg[i])
        if kinds[i] == 1:
            parents[top] = c
            parents[top + 1] = c
            top += 2
    for k in range(n, code.size):
        code[k] = 0
        arg[k] = 0
    return n
