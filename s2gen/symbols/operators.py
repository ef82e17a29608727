"""The operator registry: one row per operator, read by every part of s2gen.

Each row gives the opcode (``s2gen.kernels.opcodes``), the arity, the default
sampling weight, the infix template the renderer writes (a string sympy parses),
the sympy form and a plain numpy twin. The expression sampler takes weights
from here, the interpreter has one case per opcode, the renderer and the
tokenizer read names and templates, and the tests iterate over the rows.

Domain rules are part of the function and appear in every form: ``sqrt`` is
``sqrt(|u|)`` and ``log`` is ``log(|u|)``; ``inv`` and ``div`` follow IEEE
(1/0 = inf, which the acceptance test rejects).

Default weights are the reference generator's (Lample & Charton style; see
shared/reference/s2generator.md section 2): binary add/sub/mul 1 and div 0
(configurable); unary sqrt 5, inv 3, pow2 3, tan and arctan 0.2, arcsin and
arccos 0, the rest 1. The temporal operators (``s2gen.symbols.temporal``) have
weight 0 unless asked for; ``TEMPORAL_WEIGHTS`` are their weights when on.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from s2gen.kernels import opcodes as oc
from s2gen.symbols import temporal


@dataclass(frozen=True)
class Operator:
    """One operator of the expression language.

    ``infix`` is ``(open, middle, close)``: a unary renders as
    ``open + u + close``, a binary as ``open + a + middle + b + close``.
    ``sympy(sp, *args)`` builds the sympy form from the sympy module ``sp``;
    ``numpy(*args)`` is the float64 numpy twin the tests compare against.
    """

    name: str
    code: int
    arity: int
    weight: float
    infix: tuple[str, str, str]
    sympy: Callable
    numpy: Callable


def _np_inv(u):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return 1.0 / u


def _np_div(a, b):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return a / b


def _temporal(name: str, code: int, function: str, param: int | None = None) -> "Operator":
    fn = getattr(temporal, function)
    if param is None:
        return Operator(
            name,
            code,
            1,
            0.0,
            (f"{function}(", "", ")"),
            lambda sp, u: sp.Function(function)(u),
            fn,
        )
    return Operator(
        name,
        code,
        1,
        0.0,
        (f"{function}(", "", f", {param})"),
        lambda sp, u: sp.Function(function)(u, sp.Integer(param)),
        lambda u: fn(u, param),
    )


def _quiet(fn):
    def wrapped(*args):
        with np.errstate(all="ignore"):
            return fn(*args)

    return wrapped


OPERATORS: tuple[Operator, ...] = (
    Operator("add", oc.ADD, 2, 1.0, ("(", " + ", ")"), lambda sp, a, b: sp.Add(a, b), np.add),
    Operator("sub", oc.SUB, 2, 1.0, ("(", " - ", ")"), lambda sp, a, b: sp.Add(a, -b), np.subtract),
    Operator("mul", oc.MUL, 2, 1.0, ("(", "*", ")"), lambda sp, a, b: sp.Mul(a, b), np.multiply),
    Operator("div", oc.DIV, 2, 0.0, ("(", "/", ")"), lambda sp, a, b: a / b, _np_div),
    Operator("inv", oc.INV, 1, 3.0, ("(1/", "", ")"), lambda sp, u: 1 / u, _np_inv),
    Operator(
        "sqrt",
        oc.SQRT,
        1,
        5.0,
        ("sqrt(Abs(", "", "))"),
        lambda sp, u: sp.sqrt(sp.Abs(u)),
        _quiet(lambda u: np.sqrt(np.abs(u))),
    ),
    Operator("pow2", oc.POW2, 1, 3.0, ("(", "", "**2)"), lambda sp, u: u**2, _quiet(np.square)),
    Operator(
        "pow3", oc.POW3, 1, 1.0, ("(", "", "**3)"), lambda sp, u: u**3, _quiet(lambda u: u**3)
    ),
    Operator("abs", oc.ABS, 1, 1.0, ("Abs(", "", ")"), lambda sp, u: sp.Abs(u), np.abs),
    Operator(
        "log",
        oc.LOG,
        1,
        1.0,
        ("log(Abs(", "", "))"),
        lambda sp, u: sp.log(sp.Abs(u)),
        _quiet(lambda u: np.log(np.abs(u))),
    ),
    Operator("exp", oc.EXP, 1, 1.0, ("exp(", "", ")"), lambda sp, u: sp.exp(u), _quiet(np.exp)),
    Operator("sin", oc.SIN, 1, 1.0, ("sin(", "", ")"), lambda sp, u: sp.sin(u), _quiet(np.sin)),
    Operator("cos", oc.COS, 1, 1.0, ("cos(", "", ")"), lambda sp, u: sp.cos(u), _quiet(np.cos)),
    Operator("tan", oc.TAN, 1, 0.2, ("tan(", "", ")"), lambda sp, u: sp.tan(u), _quiet(np.tan)),
    Operator("arctan", oc.ARCTAN, 1, 0.2, ("atan(", "", ")"), lambda sp, u: sp.atan(u), np.arctan),
    Operator(
        "arcsin", oc.ARCSIN, 1, 0.0, ("asin(", "", ")"), lambda sp, u: sp.asin(u), _quiet(np.arcsin)
    ),
    Operator(
        "arccos", oc.ARCCOS, 1, 0.0, ("acos(", "", ")"), lambda sp, u: sp.acos(u), _quiet(np.arccos)
    ),
    _temporal("diff", oc.DIFF, "tdiff"),
    _temporal("cumsum", oc.CUMSUM, "tcumsum"),
    _temporal("lag1", oc.LAG1, "tlag", 1),
    _temporal("lag4", oc.LAG4, "tlag", 4),
    _temporal("lag16", oc.LAG16, "tlag", 16),
    _temporal("mavg4", oc.MAVG4, "tmavg", 4),
    _temporal("mavg16", oc.MAVG16, "tmavg", 16),
)

BY_NAME: dict[str, Operator] = {op.name: op for op in OPERATORS}
BY_CODE: dict[int, Operator] = {op.code: op for op in OPERATORS}
BINARY: tuple[Operator, ...] = tuple(op for op in OPERATORS if op.arity == 2)
UNARY: tuple[Operator, ...] = tuple(op for op in OPERATORS if op.arity == 1)
DEFAULT_WEIGHTS: dict[str, float] = {op.name: op.weight for op in OPERATORS}
TEMPORAL: tuple[Operator, ...] = tuple(op for op in OPERATORS if op.code >= oc.FIRST_TEMPORAL)
TEMPORAL_WEIGHTS: dict[str, float] = {
    "diff": 1.0,
    "cumsum": 0.5,
    "lag1": 0.3,
    "lag4": 0.3,
    "lag16": 0.3,
    "mavg4": 0.3,
    "mavg16": 0.3,
}
