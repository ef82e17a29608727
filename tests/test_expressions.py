"""Expression programs: structure, distributions, interpreter, text and tokens."""

import numpy as np
import pytest
from scipy import stats

from s2gen.config import GenerateConfig
from s2gen.generators.expressions import evaluate_program, sample_programs
from s2gen.generators.pairs import program_length
from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import from_decimal, pack, text_of, value_of
from s2gen.kernels.expression import random_skeleton
from s2gen.kernels.rng import new_state
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols import vocabulary as vocab
from s2gen.symbols.operators import BINARY, BY_CODE, BY_NAME, OPERATORS, UNARY
from s2gen.symbols.render import lambdify, parse_infix, to_infix, to_sympy
from s2gen.symbols.temporal import TEMPORAL_FUNCTIONS
from tests.naive import constant_value, program_is_well_formed
from tests.naive import evaluate_program as naive_evaluate

ALL_OPS = GenerateConfig(
    max_input_dim=3,
    operator_weights=tuple((op.name, 1.0) for op in OPERATORS),
)


def _programs(config, n, n_vars, seed=0):
    return sample_programs(config, row_seeds(seed, 0, n), n_vars)


@pytest.mark.parametrize("n_vars", [1, 3])
def test_programs_are_single_well_formed_trees_within_the_length_bound(n_vars):
    code, arg, plen = _programs(ALL_OPS, 5000, n_vars)
    assert plen.max() <= program_length(ALL_OPS)
    for i in range(len(plen)):
        assert program_is_well_formed(code[i], arg[i], plen[i], n_vars)
        assert not code[i, plen[i] :].any() and not arg[i, plen[i] :].any()


def test_every_program_uses_a_variable_and_all_when_it_has_enough_leaves():
    config = ALL_OPS.replace(const_leaf_prob=0.5)
    code, arg, plen = _programs(config, 5000, 3)
    for i in range(len(plen)):
        c, a = code[i, : plen[i]], arg[i, : plen[i]]
        used = set(a[c == oc.VAR].tolist())
        assert used, "an output without variables"
        if np.count_nonzero(c == oc.VAR) >= 3:
            assert used == {0, 1, 2}


def test_binary_operator_count_is_uniform_on_0_to_m_plus_3():
    # with constant leaves off, the skeleton's leaves are exactly the variables
    config = GenerateConfig(max_input_dim=2, const_leaf_prob=0.0)
    code, arg, plen = _programs(config, 12_000, 2)
    n_binary = np.array(
        [np.count_nonzero(code[i, : plen[i]] == oc.VAR) - 1 for i in range(len(plen))]
    )
    counts = np.bincount(n_binary, minlength=6)
    assert counts.size == 6  # 0..M+3 = 0..5
    assert stats.chisquare(counts).pvalue > 1e-3


def test_unary_operator_count_stays_within_its_range_and_covers_it():
    code, arg, plen = _programs(GenerateConfig(max_input_dim=3), 5000, 3)
    n_unary = np.array(
        [np.isin(code[i, : plen[i]], [op.code for op in UNARY]).sum() for i in range(len(plen))]
    )
    assert n_unary.min() == 0 and n_unary.max() == 5


def test_skeleton_shapes_are_uniform():
    state = new_state(np.uint64(1))
    words = [tuple(random_skeleton(state, 3)) for _ in range(10_000)]
    shapes, counts = np.unique(np.array(words), axis=0, return_counts=True)
    assert len(shapes) == 5  # Catalan(3)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_operators_are_drawn_by_weight():
    weights = {**dict(GenerateConfig().operator_weights), "div": 1.0, "mul": 2.0}
    config = GenerateConfig(max_input_dim=3, operator_weights=tuple(weights.items()))
    code, _, plen = _programs(config, 4000, 3)
    ops = np.concatenate([code[i, : plen[i]] for i in range(len(plen))])
    # add/mul also carry the affine prefactors, so compare sub and div only
    n_sub, n_div = np.count_nonzero(ops == oc.SUB), np.count_nonzero(ops == oc.DIV)
    assert abs(n_sub / (n_sub + n_div) - 0.5) < 4 * np.sqrt(0.25 / (n_sub + n_div))
    unary = [op for op in UNARY if weights[op.name] > 0]
    observed = np.array([np.count_nonzero(ops == op.code) for op in unary])
    expected = np.array([weights[op.name] for op in unary])
    expected = expected / expected.sum() * observed.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-4
    assert not np.isin(ops, [BY_NAME["arcsin"].code, BY_NAME["arccos"].code]).any()


def test_constants_lie_on_the_decimal_grid_and_print_exactly():
    code, arg, plen = _programs(GenerateConfig(), 3000, 1)
    packed = arg[code == oc.CONST]
    assert packed.size > 5000
    mantissa, exponent = np.abs(packed) // 16, np.abs(packed) % 16 - 8
    assert mantissa.min() >= 1 and mantissa.max() <= 999
    assert set(exponent.tolist()) == {-3, -2, -1}
    assert set(np.sign(packed).tolist()) == {-1, 1}
    for value in packed[:500]:
        program = np.array([oc.CONST], np.int8), np.array([value], np.int32)
        assert float(to_infix(*program).strip("()")) == constant_value(value)


def test_interpreter_matches_naive_evaluator_on_random_programs():
    code, arg, plen = _programs(ALL_OPS, 2000, 3, seed=5)
    x = np.random.default_rng(0).standard_normal((3, 64)) * 3
    arithmetic = {oc.VAR, oc.CONST, oc.ADD, oc.SUB, oc.MUL, oc.DIV, oc.POW2, oc.ABS, oc.INV}
    n_exact = n_close = 0
    for i in range(len(plen)):
        got, trig_argument = evaluate_program(code[i], arg[i], x, plen[i], with_trig_argument=True)
        want = naive_evaluate(code[i], arg[i], plen[i], x)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        if set(code[i, : plen[i]].tolist()) <= arithmetic:
            # IEEE arithmetic in the same order: bit-identical
            np.testing.assert_array_equal(got, want)
            n_exact += 1
        elif trig_argument <= 1e4:  # beyond it rounding decides; the generator rejects those
            # libm and numpy's SIMD transcendentals differ by a few ULP (by CPU),
            # which nested operators amplify
            assert scaled_gap(got, want)[0] < 1e-9
            n_close += 1
    assert n_exact > 100 and n_close > 1000


def scaled_gap(got, want):
    """Largest |got - want| over finite points, relative to max |want|."""
    finite = np.isfinite(got) & np.isfinite(want)
    scale = np.max(np.abs(want[finite]), initial=0.0)
    if not finite.any() or scale == 0:
        return 0.0, finite
    return np.max(np.abs(got[finite] - want[finite])) / scale, finite


def test_rendered_string_lambdified_by_sympy_reproduces_the_interpreter():
    config = GenerateConfig(max_input_dim=3)
    code, arg, plen = _programs(config, 1200, 3, seed=7)
    x = np.random.default_rng(1).standard_normal((3, 96)) * 2
    compared = 0
    for i in range(len(plen)):
        got, trig_argument = evaluate_program(code[i], arg[i], x, plen[i], with_trig_argument=True)
        if trig_argument > config.max_trig_argument:
            continue  # rounding noise: the generator rejects such pairs
        want = lambdify(to_infix(code[i], arg[i], plen[i]), 3)(x)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        gap, finite = scaled_gap(got, want)
        assert gap < 1e-9, (to_infix(code[i], arg[i], plen[i]), gap)
        compared += finite.any()
    assert compared >= 1000


def test_sympy_forms_from_registry_and_from_text_agree():
    code, arg, plen = _programs(ALL_OPS, 300, 2, seed=9)
    x = np.random.default_rng(2).uniform(0.1, 0.9, (2, 32))  # inside every domain
    import sympy as sp

    symbols = sp.symbols("x_0 x_1")
    for i in range(len(plen)):
        _, trig_argument = evaluate_program(code[i], arg[i], x, plen[i], with_trig_argument=True)
        if trig_argument > ALL_OPS.max_trig_argument:
            continue  # rounding noise: the generator rejects such pairs
        text = to_infix(code[i], arg[i], plen[i])
        built = to_sympy(code[i], arg[i], plen[i])
        f_built = sp.lambdify(symbols, built, [TEMPORAL_FUNCTIONS, "numpy"])
        with np.errstate(all="ignore"):
            a = np.broadcast_to(f_built(*x), (32,))
        b = lambdify(text, 2)(x)
        # sympy's printer flattens nested sums and products, which reorders float operations
        assert scaled_gap(a, b)[0] < 1e-9, text
        assert parse_infix(text).free_symbols <= set(symbols)


EDGE = np.array(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        1e-300,
        -1e-300,
        1e300,
        -1e300,
        710.0,
        -745.0,
        np.pi / 2,
        np.inf,
        -np.inf,
        np.nan,
    ]
)


IEEE_EXACT = {oc.INV, oc.SQRT, oc.POW2, oc.ABS} | set(range(oc.FIRST_TEMPORAL, oc.N_CODES))


@pytest.mark.parametrize("op", UNARY, ids=lambda op: op.name)
def test_every_unary_operator_on_edge_values_matches_its_numpy_twin(op):
    program = np.array([op.code, oc.VAR], np.int8), np.array([0, 0], np.int32)
    got = evaluate_program(*program, EDGE[None, :])
    want = op.numpy(EDGE.copy())
    if op.code in IEEE_EXACT:
        np.testing.assert_array_equal(got, want)  # NaN equals NaN here
    else:  # libm vs numpy's SIMD transcendentals: within 2 ULP, same NaNs and infinities
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        exact = ~np.isfinite(want)
        np.testing.assert_array_equal(got[exact], want[exact])
        np.testing.assert_array_max_ulp(got[~exact], want[~exact], maxulp=2)


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.name)
def test_every_binary_operator_on_edge_values_matches_its_numpy_twin(op):
    a, b = np.meshgrid(EDGE, EDGE)
    x = np.stack([a.ravel(), b.ravel()])
    program = np.array([op.code, oc.VAR, oc.VAR], np.int8), np.array([0, 0, 1], np.int32)
    np.testing.assert_array_equal(evaluate_program(*program, x), op.numpy(x[0], x[1]))
    # scalar operands take another path through the interpreter
    const = np.array([op.code, oc.CONST, oc.VAR], np.int8), np.array([0, pack(-1, 735, -1), 0])
    np.testing.assert_array_equal(evaluate_program(*const, x), op.numpy(-73.5, x[0]))
    const = np.array([op.code, oc.VAR, oc.CONST], np.int8), np.array([0, 0, pack(1, 2, -2)])
    np.testing.assert_array_equal(evaluate_program(*const, x), op.numpy(x[0], 0.02))


def test_every_operator_renders_to_text_sympy_reads():
    for op in OPERATORS:
        n = op.arity
        code = np.array([op.code] + [oc.VAR] * n, np.int8)
        arg = np.array([0] + list(range(n)), np.int32)
        x = np.array([[0.3, -0.7, 2.0], [0.9, 0.4, -1.5]])[:n]
        want = op.numpy(*x)
        got = lambdify(to_infix(code, arg), n)(x)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_token_round_trip_on_10000_expressions():
    config = GenerateConfig(max_input_dim=4, operator_weights=ALL_OPS.operator_weights)
    code, arg, plen = _programs(config, 10_000, 4, seed=11)
    for i in range(len(plen)):
        tokens = vocab.program_to_tokens(code[i], arg[i], plen[i])
        assert tokens.min() > vocab.SEP  # no special tokens inside an expression
        back_code, back_arg = vocab.tokens_to_program(np.r_[tokens, 0, 0])
        np.testing.assert_array_equal(back_code, code[i, : plen[i]])
        np.testing.assert_array_equal(back_arg, arg[i, : plen[i]])


def test_vocabulary_is_closed_and_documented_layout_holds():
    tokens = vocab.vocabulary()
    assert tokens[:5] == ["<pad>", "<bos>", "<eos>", "<mask>", "<sep>"]
    assert tokens[vocab.VAR_BASE] == "x_0" and tokens[vocab.EXP_BASE] == "E-8"
    assert set(op.name for op in OPERATORS) <= set(tokens)
    assert len(tokens) == len(set(tokens))
    for op in OPERATORS:
        assert BY_CODE[op.code] is op and tokens[vocab.OP_TOKEN[op.code]] == op.name


@pytest.mark.parametrize(
    "bad,where",
    [
        ([vocab.INDEX["+"], vocab.INDEX["1"], vocab.INDEX["E-1"]], "position 0"),
        ([vocab.INDEX["add"], vocab.BOS], "position 1"),
        ([999], "position 0"),
    ],
)
def test_malformed_tokens_give_an_error_with_the_position(bad, where):
    with pytest.raises(ValueError, match=where):
        vocab.tokens_to_program(bad)


@pytest.mark.parametrize(
    "text,value",
    [
        ("73.5", 73.5),
        ("-0.092", -0.092),
        ("0.001", 0.001),
        ("12000", 12000.0),
        ("5e-8", 5e-8),
        ("999e7", 9.99e9),
        ("-1", -1.0),
        ("0.5", 0.5),
    ],
)
def test_constants_pack_to_exact_text_and_value(text, value):
    packed = from_decimal(text)
    assert value_of(packed) == value == float(text_of(packed))
    code, arg = np.array([oc.CONST], np.int8), np.array([packed], np.int32)
    back_code, back_arg = vocab.tokens_to_program(vocab.program_to_tokens(code, arg))
    assert back_arg[0] == packed


@pytest.mark.parametrize("text", ["0.1234", "1e-9", "1e11", "0", "nan", "3.14159"])
def test_constants_outside_the_grid_are_not_representable(text):
    assert from_decimal(text) is None
