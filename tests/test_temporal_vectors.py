"""The temporal operators on hand-computed vectors, in all three forms: the interpreter kernel,
the numpy definitions (s2gen.symbols.temporal) and sympy's lambdify of the rendered text.

The other tests compare these forms with each other; here each is held to numbers worked out
by hand from the definitions in docs/FORMAT.md.
"""

import numpy as np
import pytest

from s2gen.generators.expressions import evaluate_program
from s2gen.kernels import opcodes as oc
from s2gen.symbols.operators import BY_NAME, TEMPORAL
from s2gen.symbols.render import lambdify, to_infix
from s2gen.symbols.temporal import TEMPORAL_FUNCTIONS

CASES = [
    # (operator, u, expected)
    ("diff", [1, 2, 4, 7, 11], [1, 1, 2, 3, 4]),  # tdiff(u)[0] = tdiff(u)[1]
    ("diff", [5, 5], [0, 0]),
    ("cumsum", [1, 2, 4, 7, 11], [1, 3, 7, 14, 25]),
    ("cumsum", [3, -3, 3], [3, 0, 3]),
    ("lag1", [1, 2, 3, 4], [1, 1, 2, 3]),  # u[t-1], u[0] before
    ("lag4", [1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, 2]),
    ("lag16", [1, 2, 3, 4, 5], [1, 1, 1, 1, 1]),  # shorter than the lag: all u[0]
    ("mavg4", [1, 2, 3, 4, 5, 6], [1, 1.5, 2, 2.5, 3.5, 4.5]),  # mean of the last min(t+1, 4)
    ("mavg16", [2, 4, 6], [2, 3, 4]),
    ("mavg16", list(range(1, 19)), [(t + 2) / 2 for t in range(16)] + [9.5, 10.5]),
]


def _program(name: str) -> tuple[np.ndarray, np.ndarray]:
    """op(x_0) as a prefix program."""
    return np.array([BY_NAME[name].code, oc.VAR], np.int8), np.zeros(2, np.int32)


@pytest.mark.parametrize("name,u,want", CASES, ids=[f"{c[0]}-{len(c[1])}" for c in CASES])
def test_temporal_operator_on_a_hand_computed_vector(name, u, want):
    x = np.array([u], np.float64)
    want = np.array(want, np.float64)
    code, arg = _program(name)
    np.testing.assert_array_equal(evaluate_program(code, arg, x), want)
    text = to_infix(code, arg)
    function = text.split("(")[0]
    params = [int(p) for p in text.rstrip(")").split(", ")[1:]]
    np.testing.assert_array_equal(TEMPORAL_FUNCTIONS[function](x[0], *params), want)
    np.testing.assert_array_equal(lambdify(text, 1)(x), want)


def test_every_temporal_operator_has_a_hand_computed_case():
    assert {op.name for op in TEMPORAL} == {name for name, _, _ in CASES}


def test_renderings_are_the_documented_names():
    rendered = {op.name: to_infix(*_program(op.name)) for op in TEMPORAL}
    assert rendered == {
        "diff": "tdiff(x_0)",
        "cumsum": "tcumsum(x_0)",
        "lag1": "tlag(x_0, 1)",
        "lag4": "tlag(x_0, 4)",
        "lag16": "tlag(x_0, 16)",
        "mavg4": "tmavg(x_0, 4)",
        "mavg16": "tmavg(x_0, 16)",
    }
