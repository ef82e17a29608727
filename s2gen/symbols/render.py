"""Programs as text and as sympy expressions.

``to_infix`` writes the string stored in a store's ``expr`` array: s2gen's
parser (``s2gen.symbols.grammar``, which executes nothing) reads it back as the
sympy tree sympy's own parser would build with ``evaluate=False``, and
``lambdify`` of that tree reproduces the interpreter, domain rules
(``sqrt(Abs(u))``, ``log(Abs(u))``) and exact decimal constants included.
``to_sympy`` builds the same expression from the registry's sympy forms,
independently of the text (the tests compare the two). sympy is imported
lazily: it never sits on the generation path.
"""

import numpy as np

from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import text_of
from s2gen.kernels.render import CHARS_PER_NODE, render_batch, render_infix
from s2gen.symbols.grammar import ExpressionError, parse
from s2gen.symbols.operators import BY_CODE, OPERATORS
from s2gen.symbols.temporal import TEMPORAL_FUNCTIONS

TEMPLATE_WIDTH = max(len(part) for op in OPERATORS for part in op.infix)
TEMPLATES = np.zeros((oc.N_CODES, 3, TEMPLATE_WIDTH), np.uint8)
TEMPLATE_LENGTHS = np.zeros((oc.N_CODES, 3), np.int64)
for _op in OPERATORS:
    for _part, _text in enumerate(_op.infix):
        TEMPLATES[_op.code, _part, : len(_text)] = np.frombuffer(_text.encode(), np.uint8)
        TEMPLATE_LENGTHS[_op.code, _part] = len(_text)


def infix_width(program_length: int) -> int:
    """Bytes that bound the infix text of a program of ``program_length`` nodes."""
    return CHARS_PER_NODE * program_length


def to_infix(code: np.ndarray, arg: np.ndarray, length: int | None = None) -> str:
    """Infix string of one program (the form stored in ``expr``)."""
    length = len(code) if length is None else int(length)
    buf = np.zeros(infix_width(length), np.uint8)
    n = render_infix(
        np.asarray(code, np.int8),
        np.asarray(arg, np.int32),
        length,
        TEMPLATES,
        TEMPLATE_LENGTHS,
        buf,
    )
    return buf[:n].tobytes().decode("ascii")


def infix_batch(
    code: np.ndarray, arg: np.ndarray, plen: np.ndarray, n_out: np.ndarray
) -> np.ndarray:
    """Infix strings of a batch of programs as a numpy StringDType array [n, C].

    Padding programs (j >= n_out[i]) give "". The rendering runs in Numba; the
    conversion to strings is one vectorised numpy cast.
    """
    n, channels, length = code.shape
    width = infix_width(length)
    buf = np.zeros((n, channels, width), np.uint8)
    render_batch(code, arg, plen, n_out, TEMPLATES, TEMPLATE_LENGTHS, buf)
    return buf.view(f"S{width}")[..., 0].astype(np.dtypes.StringDType())


def parse_infix(text: str):
    """sympy expression of a stored infix string, structure kept as written.

    Read by ``s2gen.symbols.grammar.parse``: nothing is reordered or
    cancelled, so the lambdified function performs the same float64
    operations as the interpreter. Raises ExpressionError for text outside
    s2gen's language.
    """
    return parse(text)


def to_sympy(code: np.ndarray, arg: np.ndarray, length: int | None = None):
    """sympy expression of one program, built from the registry's sympy forms.

    Built unevaluated, like ``parse_infix``: sympy would otherwise simplify,
    e.g. ``x_0/x_0`` to 1, and a temporal operator would lose its series.
    """
    import sympy as sp

    length = len(code) if length is None else int(length)
    stack = []
    with sp.evaluate(False):
        for pos in range(length - 1, -1, -1):
            c = int(code[pos])
            if c == oc.VAR:
                stack.append(sp.Symbol(f"x_{int(arg[pos])}"))
            elif c == oc.CONST:
                stack.append(sp.Float(text_of(int(arg[pos]))))
            else:
                op = BY_CODE[c]
                operands = [stack.pop() for _ in range(op.arity)]
                stack.append(op.sympy(sp, *operands))
    if len(stack) != 1:
        raise ValueError(f"program is malformed: {len(stack)} values left on the stack")
    return stack[0]


def lambdify(text: str, n_inputs: int):
    """numpy function f(x) of a stored infix string; x is float64[M, L].

    sympy's lambdify only ever sees the tree ``parse_infix`` built. Raises
    ExpressionError for text outside s2gen's language or that uses a variable
    x_i with i >= ``n_inputs``.
    """
    import sympy as sp

    tree = parse_infix(text)
    unknown = sorted(s.name for s in tree.free_symbols if int(s.name[2:]) >= n_inputs)
    if unknown:
        raise ExpressionError(text, f"it uses {', '.join(unknown)} but has {n_inputs} input(s)")
    symbols = [sp.Symbol(f"x_{i}") for i in range(n_inputs)]
    fn = sp.lambdify(symbols, tree, modules=[TEMPORAL_FUNCTIONS, "numpy"])

    def apply(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = fn(*[x[i] for i in range(n_inputs)])
        return np.broadcast_to(np.asarray(out, np.float64), x.shape[1:]).copy()

    return apply
