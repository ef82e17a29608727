"""User expressions (text) as s2gen programs, for pairs of a given f.

``program_of(text)`` reads an expression such as ``"sin(x_0) + 0.5*x_1"`` with
s2gen's own parser (``s2gen.symbols.grammar``: it builds a sympy tree and
executes nothing) and returns the prefix program the interpreter runs. The
program's rendering (``s2gen.symbols.render.to_infix``) is what a store
records; it is the same function as the text, with two rules of s2gen's
language made explicit: ``sqrt(u)`` is ``sqrt(Abs(u))`` and ``log(u)`` is
``log(Abs(u))`` (they agree wherever the text is real); ``u**0.5`` and
``u**-0.5`` are ``sqrt(u)`` and ``1/sqrt(u)``, so they too act on ``|u|``.
Everything else must map exactly, or the text is refused with the reason:

- variables ``x_0`` .. ``x_15``; constants exactly ``m * 10**e`` with m in
  1..999 and e in -8..7 (a constant is never rounded behind the user's back);
- ``+ - * /``, powers ``u**k`` with k an integer -3..3 or +-0.5, ``Abs``,
  ``exp``, ``log``, ``sqrt``, ``sin``, ``cos``, ``tan``, ``atan``, ``asin``,
  ``acos``;
- the temporal functions ``tdiff(u)``, ``tcumsum(u)``, ``tlag(u, k)`` (k in 1,
  4, 16) and ``tmavg(u, w)`` (w in 4, 16).
"""

from functools import lru_cache

import numpy as np

from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import from_decimal
from s2gen.symbols.grammar import ExpressionError, parse
from s2gen.symbols.operators import BY_NAME
from s2gen.symbols.render import to_infix

__all__ = ["ExpressionError", "program_of", "variables_of"]

_FUNCTIONS = {
    "exp": "exp",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "atan": "arctan",
    "asin": "arcsin",
    "acos": "arccos",
    "Abs": "abs",
    "tdiff": "diff",
    "tcumsum": "cumsum",
}
_WINDOWED = {"tlag": {1: "lag1", 4: "lag4", 16: "lag16"}, "tmavg": {4: "mavg4", 16: "mavg16"}}
_POWERS = {2: ["pow2"], 3: ["pow3"], -1: ["inv"], -2: ["inv", "pow2"], -3: ["inv", "pow3"]}


def _fail(text: str, reason: str) -> None:
    raise ExpressionError(text, reason)


def _constant(value, text: str) -> tuple[int, int]:
    import sympy as sp

    if isinstance(value, sp.Rational) and not isinstance(value, sp.Integer):
        _fail(text, f"write the fraction {value} as a decimal (e.g. 0.5) or as a division")
    decimal = repr(float(value))
    packed = from_decimal(decimal)
    if packed is None:
        _fail(
            text,
            f"the constant {decimal} is not m*10^e with m in 1..999 and e in -8..7 "
            "(s2gen stores constants exactly); round it to three significant digits",
        )
    return oc.CONST, packed


def _node(name: str) -> tuple[int, int]:
    return BY_NAME[name].code, 0


def _emit(expr, text: str, out: list[tuple[int, int]]) -> None:
    """Append the prefix program of ``expr`` to ``out`` as (code, arg) pairs."""
    import sympy as sp

    if isinstance(expr, sp.Symbol):  # the parser admits only x_0 .. x_15
        out.append((oc.VAR, int(expr.name[2:])))
    elif expr.is_Number:
        if expr == 0:
            _fail(text, "a zero constant cannot be stored; simplify it away")
        if not expr.is_finite:
            _fail(text, f"{expr} is not a finite constant")
        out.append(_constant(expr, text))
    elif isinstance(expr, (sp.Add, sp.Mul)):
        _emit_fold(expr, text, out)
    elif isinstance(expr, sp.Pow):
        _emit_power(expr, text, out)
    elif isinstance(expr, sp.log):
        out.append(_node("log"))
        arg = expr.args[0]
        _emit(arg.args[0] if isinstance(arg, sp.Abs) else arg, text, out)
    elif expr.func.__name__ in _FUNCTIONS and len(expr.args) == 1:
        out.append(_node(_FUNCTIONS[expr.func.__name__]))
        _emit(expr.args[0], text, out)
    elif expr.func.__name__ in _WINDOWED and len(expr.args) == 2:  # the parser checked k
        name, window = expr.func.__name__, expr.args[1]
        out.append(_node(_WINDOWED[name][int(window)]))
        _emit(expr.args[0], text, out)
    else:
        _fail(text, f"{expr.func.__name__} is not in s2gen's language (see s2gen.symbols.parse)")


def _emit_fold(expr, text: str, out: list[tuple[int, int]]) -> None:
    """a + b + c as ((a + b) + c), a + (-1)*b as a - b; a * b**-1 as a / b."""
    import sympy as sp

    terms = list(expr.args)
    is_add = isinstance(expr, sp.Add)

    def inverse_part(term):
        if is_add and isinstance(term, sp.Mul) and term.args[0] == -1:
            rest = term.args[1:]
            return rest[0] if len(rest) == 1 else sp.Mul(*rest, evaluate=False)
        if not is_add and isinstance(term, sp.Pow) and term.args[1] == -1:
            return term.args[0]
        return None

    head = []
    for k in range(len(terms) - 1, 0, -1):
        inverse = inverse_part(terms[k])
        if inverse is None:
            head.append((_node("add" if is_add else "mul"), terms[k]))
        else:
            head.append((_node("sub" if is_add else "div"), inverse))
    for node, _ in head:
        out.append(node)
    _emit(terms[0], text, out)
    for _, term in reversed(head):
        _emit(term, text, out)


def _emit_power(expr, text: str, out: list[tuple[int, int]]) -> None:
    """u**k; k = +-1/2 (``sqrt(u)`` or written ``u**0.5``) acts on |u|, as sqrt does."""
    import sympy as sp

    base, exponent = expr.args
    value = float(exponent) if exponent.is_Rational or exponent.is_Float else None
    if value is not None and abs(value) == 0.5:  # sqrt(u) is u**(1/2); u**0.5 a Float
        out.extend([_node("inv"), _node("sqrt")] if value < 0 else [_node("sqrt")])
        base = base.args[0] if isinstance(base, sp.Abs) else base
    elif exponent.is_Integer and int(exponent) in _POWERS:
        out.extend(_node(name) for name in _POWERS[int(exponent)])
    elif exponent != 1:
        _fail(text, f"the power {exponent} is not supported: use -3..3 or +-0.5 (or exp/log)")
    _emit(base, text, out)


@lru_cache(maxsize=256)
def program_of(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Prefix program (code int8[P], arg int32[P]) of one expression text.

    Raises ExpressionError (a ValueError) naming what cannot be represented,
    including a program whose stored text (``to_infix``) would exceed the
    parser's length or depth limits.
    """
    text = str(text)
    expr = parse(text)
    if not expr.free_symbols:
        _fail(text, "it has no input variable x_i, so every output would be constant")
    nodes: list[tuple[int, int]] = []
    _emit(expr, text, nodes)
    code = np.array([c for c, _ in nodes], np.int8)
    arg = np.array([a for _, a in nodes], np.int32)
    try:  # the stored form nests deeper than the text (a + b + c is ((a + b) + c))
        parse(to_infix(code, arg))
    except ExpressionError as exc:
        _fail(text, f"its stored form would be refused: {exc.reason}")
    code.setflags(write=False)
    arg.setflags(write=False)
    return code, arg


def variables_of(code: np.ndarray, arg: np.ndarray) -> int:
    """Number of input channels a program needs (1 + its largest x index)."""
    return int(arg[code == oc.VAR].max(initial=-1)) + 1
