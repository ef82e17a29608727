"""User expressions (sympy text) as s2gen programs, for pairs of a given f.

``program_of(text)`` reads an expression such as ``"sin(x_0) + 0.5*x_1"`` and
returns the prefix program the interpreter runs. The program's rendering
(``s2gen.symbols.render.to_infix``) is what a store records; it is the same
function as the text, with two rules of s2gen's language made explicit:
``sqrt(u)`` is ``sqrt(Abs(u))`` and ``log(u)`` is ``log(Abs(u))`` (they agree
wherever the text is real). Everything else must map exactly, or the text is
refused with the reason:

- variables ``x_0`` .. ``x_15``; constants exactly ``m * 10**e`` with m in
  1..999 and e in -8..7 (a constant is never rounded behind the user's back);
- ``+ - * /``, powers with exponents -3..3 and +-1/2, ``Abs``, ``exp``, ``log``,
  ``sin``, ``cos``, ``tan``, ``atan``, ``asin``, ``acos``;
- the temporal functions ``tdiff(u)``, ``tcumsum(u)``, ``tlag(u, k)`` (k in 1,
  4, 16) and ``tmavg(u, w)`` (w in 4, 16).
"""

from functools import lru_cache

import numpy as np

from s2gen.config import MAX_INPUT_DIM
from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import from_decimal
from s2gen.symbols.operators import BY_NAME

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


class ExpressionError(ValueError):
    """A user expression that s2gen's language cannot represent exactly."""


def _fail(text: str, reason: str) -> None:
    raise ExpressionError(f"expression {text!r}: {reason}")


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

    if isinstance(expr, sp.Symbol):
        name = expr.name
        index = name[2:] if name.startswith("x_") else ""
        if not index.isdigit() or int(index) >= MAX_INPUT_DIM:
            _fail(text, f"unknown symbol {name!r}; the inputs are x_0 .. x_{MAX_INPUT_DIM - 1}")
        out.append((oc.VAR, int(index)))
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
    elif expr.func.__name__ in _WINDOWED and len(expr.args) == 2:
        name, window = expr.func.__name__, expr.args[1]
        choices = _WINDOWED[name]
        if not (window.is_Integer and int(window) in choices):
            _fail(text, f"{name}(u, k) takes k in {sorted(choices)}, got {window}")
        out.append(_node(choices[int(window)]))
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
    import sympy as sp

    base, exponent = expr.args
    if exponent == sp.Rational(1, 2):
        out.append(_node("sqrt"))
    elif exponent == sp.Rational(-1, 2):
        out.extend([_node("inv"), _node("sqrt")])
    elif exponent.is_Integer and int(exponent) in _POWERS:
        out.extend(_node(name) for name in _POWERS[int(exponent)])
    elif exponent == 1:
        pass
    else:
        _fail(text, f"the power {exponent} is not supported: use -3..3 or +-1/2 (or exp/log)")
    _emit(base.args[0] if isinstance(base, sp.Abs) and exponent.q == 2 else base, text, out)


@lru_cache(maxsize=256)
def program_of(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Prefix program (code int8[P], arg int32[P]) of one expression text.

    Raises ExpressionError (a ValueError) naming what cannot be represented.
    """
    import sympy as sp
    from sympy.parsing.sympy_parser import parse_expr

    names = {"tdiff", "tcumsum", "tlag", "tmavg"}
    local = {name: sp.Function(name) for name in names}
    local.update({f"x_{i}": sp.Symbol(f"x_{i}") for i in range(MAX_INPUT_DIM)})
    try:
        expr = parse_expr(str(text), local_dict=local, evaluate=False)
    except (SyntaxError, TypeError, ValueError, sp.SympifyError) as exc:
        _fail(text, f"sympy cannot parse it ({exc})")
    if not getattr(expr, "free_symbols", None):
        _fail(text, "it has no input variable x_i, so every output would be constant")
    nodes: list[tuple[int, int]] = []
    _emit(expr, text, nodes)
    code = np.array([c for c, _ in nodes], np.int8)
    arg = np.array([a for _, a in nodes], np.int32)
    code.setflags(write=False)
    arg.setflags(write=False)
    return code, arg


def variables_of(code: np.ndarray, arg: np.ndarray) -> int:
    """Number of input channels a program needs (1 + its largest x index)."""
    return int(arg[code == oc.VAR].max(initial=-1)) + 1
