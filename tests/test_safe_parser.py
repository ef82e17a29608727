"""s2gen's expression parser against sympy's: the same trees, the same numbers, the same language.

sympy's ``parse_expr`` appears here only as a twin, on trusted text (generated
expressions and the hand-written corpus below): the package itself never calls it.
"""

import numpy as np
import pytest
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from s2gen.config import MAX_INPUT_DIM, SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.expressions import sample_programs
from s2gen.generators.pairs import generate_batch
from s2gen.kernels import opcodes as oc
from s2gen.kernels.expression import max_program_length
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols import grammar
from s2gen.symbols.grammar import ExpressionError, parse
from s2gen.symbols.operators import BY_NAME, OPERATORS, TEMPORAL_WEIGHTS
from s2gen.symbols.parse import program_of
from s2gen.symbols.render import infix_width, lambdify, to_infix
from s2gen.symbols.temporal import TEMPORAL_FUNCTIONS

EVERY_OPERATOR = tuple((op.name, 1.0) for op in OPERATORS)  # div, asin, acos, temporal included
X = [sp.Symbol(f"x_{i}") for i in range(MAX_INPUT_DIM)]
USER_NAMES = {  # the names the old program_of gave sympy's parser
    **{name: sp.Function(name) for name in ("tdiff", "tcumsum", "tlag", "tmavg")},
    **{f"x_{i}": X[i] for i in range(MAX_INPUT_DIM)},
}
WRITTEN = [  # hand-written text of the language: signs, nesting, chains, powers, numbers
    "sin(x_0) + 0.5*x_1",
    "x_0 - x_1 - 2*x_2",
    "x_0/x_1 + x_2**-2",
    "-x_0 + x_1**3",
    "exp(-x_0**2/2)*cos(3*x_1)",
    "atan(x_0)*Abs(x_1) + tan(0.1*x_2)",
    "tlag(x_0, 4) + tdiff(tmavg(x_1, 16)) - tcumsum(x_2)*1e-3",
    "sqrt(Abs(x_0)) + log(Abs(x_1)) + 1/3",
    "sqrt(x_0) + log(x_1)",
    "1/sqrt(x_2)",
    "-(x_0 + x_1)",
    "-(x_0*x_1)*x_2",
    "x_0*(x_1*x_2)/x_0/(x_1/x_2)",
    "(1/x_0)*x_1 - (x_1 - x_2) + (x_0 + (x_1 + x_2))",
    "+x_0 - -x_1 + --x_2",
    "-x_0/x_1 - (-x_1)/x_0",
    "-x_0**2 + (-x_0)**2 + x_0**(-2) + x_0**+3 + x_0**(2)",
    "x_0**0.5 + x_1**-0.5 + x_2**.5 + x_0**5e-1",
    "2**3*x_0 + 2**-1*x_1",
    "-(x_0 + 1/2)",
    ".5*x_0 + 1.*x_1 + 1E+2*x_2 + 12000.0*x_0 + 0.00000001*x_1",
    "asin(x_0)*acos(x_1)/tcumsum(x_2 - tlag(x_0, 16))",
    "tmavg(x_0, (4)) + tlag(x_1, +1) * x_15",
    "((((x_0))))",
    "x_0\t*\tx_1",
]


def _programs(config, n, n_vars, seed):
    code, arg, plen = sample_programs(config, row_seeds(seed, 0, n), n_vars)
    return [to_infix(code[i], arg[i], plen[i]) for i in range(n)]


def _same_tree(text, srepr=True, **names):
    """sympy's == is strict: node types, argument order, Float precision (srepr spells it out)."""
    mine, theirs = parse(text), parse_expr(text, local_dict=names or None, evaluate=False)
    assert mine == theirs, text
    if srepr:
        assert sp.srepr(mine) == sp.srepr(theirs), text


def test_generated_expressions_parse_to_sympys_tree_with_every_operator():
    small = GenerateConfig(max_input_dim=3, operator_weights=EVERY_OPERATOR)
    large = GenerateConfig(  # the largest programs a config allows, on 16 inputs
        min_input_dim=16,
        max_input_dim=16,
        binary_ops_offset=16,
        max_unary_ops=16,
        operator_weights=EVERY_OPERATOR,
    )
    texts = _programs(small, 2000, 3, seed=21) + _programs(large, 100, 16, seed=22)
    for k, text in enumerate(texts):
        _same_tree(text, srepr=k % 10 == 0)
    names = {op.infix[0].rstrip("(") for op in OPERATORS}
    seen = {name for name in names if any(name in t for t in texts)}
    assert seen == names  # every operator's template occurs


def test_hand_written_expressions_parse_to_the_tree_the_old_program_of_read():
    for text in WRITTEN:
        _same_tree(text, **USER_NAMES)
        _same_tree(text)


@pytest.mark.parametrize("preset", sorted(SAMPLER_PRESETS))
def test_stored_strings_reproduce_y_bit_for_bit_as_sympys_parser_did(preset):
    weights = {**dict(EVERY_OPERATOR), **TEMPORAL_WEIGHTS, "arcsin": 0.3, "arccos": 0.3}
    config = GenerateConfig(
        length=48,
        max_input_dim=3,
        max_output_dim=2,
        operator_weights=tuple(weights.items()),
        sampler_weights=SAMPLER_PRESETS[preset],
    )
    batch = generate_batch(config, row_seeds(5, 0, 120))
    compared = 0
    for i in range(len(batch)):
        m = int(batch.n_in[i])
        x = batch.x[i, :m].astype(np.float64)
        for j in range(int(batch.n_out[i])):
            text = batch.expression(i, j)
            got = lambdify(text, m)(x)
            tree = parse_expr(text, evaluate=False)
            twin = sp.lambdify(X[:m], tree, modules=[TEMPORAL_FUNCTIONS, "numpy"])
            with np.errstate(all="ignore"):
                want = np.broadcast_to(np.asarray(twin(*x), np.float64), x.shape[1:])
            np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64), err_msg=text)
            stored = batch.y[i, j]  # and validate's promise: within one float32 ULP
            gap = np.abs(got.astype(np.float32).astype(np.float64) - stored.astype(np.float64))
            assert (gap <= np.spacing(np.abs(stored)).astype(np.float64)).all(), text
            compared += 1
    assert compared >= 150


def test_a_power_of_one_half_is_sqrt_of_abs_as_the_language_says():
    assert program_of("x_0**0.5")[0].tolist() == program_of("sqrt(x_0)")[0].tolist()
    inverse_sqrt = [BY_NAME["inv"].code, BY_NAME["sqrt"].code, oc.VAR]
    assert program_of("x_1**(-0.5)")[0].tolist() == inverse_sqrt
    x = np.array([[-2.0, -0.5, 0.25, 3.0]])
    np.testing.assert_array_equal(lambdify(to_infix(*program_of("x_0**0.5")), 1)(x), [
        np.sqrt(2.0), np.sqrt(0.5), 0.5, np.sqrt(3.0)])  # fmt: skip
    with pytest.raises(ExpressionError, match=r"the exponent '\(1/2\)' .* is not a number"):
        program_of("x_0**(1/2)")
    with pytest.raises(ExpressionError, match="the power 2.0 at column 6 is not supported"):
        program_of("x_0**2.0")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("x_0**0", "the power 0 at column 6 is not supported"),
        ("x_0**x_1", "the exponent 'x_1' at column 6 is not a number"),
        ("tmavg(x_0, 1)", "tmavg(u, k) takes k in [4, 16], got '1'"),
        ("tlag(x_0, 4.0)", "takes k in [1, 4, 16], got '4.0'"),
        ("tlag(x_0)", "expected ',' after the series argument of tlag(u, k)"),
        ("sin(x_0, x_1)", "expected ')' to close sin( at column 1 (it takes one argument)"),
        ("sin", "sin at column 1 is a function: write sin(u)"),
        ("x_0(1)", "x_0 at column 1 is a variable, not a function"),
        ("abs(x_0)", "'abs' at column 1 is not in s2gen's language"),
        ("y + x_0", "unknown symbol 'y' at column 1"),
        ("x_01", "unknown symbol 'x_01'"),
        ("007*x_0", "the integer '007' at column 1 has leading zeros"),
        ("1e1000*x_0", "the number '1e1000' at column 1 has an exponent over 3 digits"),
        ("2x_0", "cannot parse it: unexpected 'x_0' at column 2"),
        ("(x_0", "cannot parse it: expected ')' to close the '(' at column 1"),
        ("x_0)", "cannot parse it: unexpected ')' at column 4"),
        ("x_0 ^ 2", "'^' at column 5: write powers as u**2"),
        ("   ", "it is empty"),
    ],
)
def test_text_outside_the_language_is_refused_naming_the_token(text, reason):
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert reason in str(caught.value) and str(caught.value).startswith(f"expression {text!r}")


def _paren_depth(text):
    depth = deepest = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest


def test_every_program_the_sampler_can_make_fits_the_limits():
    longest = max_program_length(MAX_INPUT_DIM + 16, 16)  # binary_ops_offset, max_unary_ops <= 16
    assert infix_width(longest) <= grammar.MAX_LENGTH
    large = GenerateConfig(
        min_input_dim=16,
        max_input_dim=16,
        binary_ops_offset=16,
        max_unary_ops=16,
        operator_weights=EVERY_OPERATOR,
    )
    deepest = max(_paren_depth(text) for text in _programs(large, 2000, 16, seed=23))
    # a path has <= 32 binary nodes (2 levels each with the factor), unaries only in subtrees
    # under 6 tokens (4 levels each, at most 3), the root's offset and factor: <= 78 levels
    assert 20 < deepest <= 78 < grammar.MAX_DEPTH - 4


def test_nesting_up_to_the_depth_limit_parses_and_evaluates_and_beyond_is_refused():
    depth = grammar.MAX_DEPTH - 1  # the whole text is one level
    text = "x_0"
    for k in range(depth):
        text = f"sin({text})" if k % 3 else f"({text} + 0.5)"
    _same_tree(text)
    x = np.array([[0.1, 0.2]])
    assert np.isfinite(lambdify(text, 1)(x)).all()
    sums = len(range(0, depth, 3))  # each (u + 0.5) is two nodes, each sin(u) one
    assert len(program_of(text)[0]) == 2 * sums + (depth - sums) + 1
    with pytest.raises(ExpressionError, match=f"nests deeper than {grammar.MAX_DEPTH} levels"):
        parse(f"sin({text})")
    with pytest.raises(ExpressionError, match="nests deeper"):
        parse("-" * grammar.MAX_DEPTH + "x_0")


def test_a_given_expression_whose_stored_form_is_too_deep_is_refused():
    assert program_of(" + ".join(["x_0"] * 60))  # the text is flat; its rendering 59 deep
    with pytest.raises(ExpressionError, match="its stored form would be refused: it nests deeper"):
        program_of(" + ".join(["x_0"] * 150))


def test_integer_constants_are_bounded_before_lambdify_would_build_them():
    ok = "((((9**3)**3)**3)**3)*x_0"  # 9**81: 78 digits
    assert lambdify(ok, 1)(np.ones((1, 2)))[0] == float(9**81)
    with pytest.raises(ExpressionError, match="would have more than 300 digits"):
        parse("((((((9**3)**3)**3)**3)**3)**3)*x_0")
    with pytest.raises(ExpressionError, match="would have more than 300 digits"):
        parse("*".join(["99999999999999999999"] * 16) + "*x_0")


def test_lambdify_refuses_a_variable_beyond_the_inputs():
    with pytest.raises(ExpressionError, match="it uses x_3 but has 2 input"):
        lambdify("(x_0 + x_3)", 2)


def test_the_error_pickles_and_names_its_field():
    import pickle

    error = ExpressionError("x_0.y", "'.' at column 4: attribute access").for_field(
        "expressions[1]"
    )
    back = pickle.loads(pickle.dumps(error))
    assert (
        str(back)
        == str(error)
        == "expressions[1]='x_0.y' is invalid: '.' at column 4: attribute access"
    )
