"""s2gen's expression language: text to a sympy tree, and nothing ever executed.

Every expression string s2gen reads goes through ``parse``: ``--expr``, the
``expressions`` of a config file or of a store's header, and the ``expr`` array
of a store (``s2gen validate``/``show``, ``s2gen.symbols.render.lambdify``).
It is a tokenizer and a recursive-descent parser that build the sympy tree
directly; no text is handed to Python or to sympy's own text parser. It
accepts exactly this grammar (Python's precedence and associativity)::

    expression := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := ("+" | "-") factor | power
    power      := primary ["**" factor]
    primary    := NUMBER | VARIABLE | "(" expression ")"
                | FUNCTION "(" expression ")" | WINDOWED "(" expression "," expression ")"

- NUMBER: a decimal literal, ``3``, ``0.5``, ``.5``, ``2.``, ``1e-3`` (at most
  32 characters, an exponent of at most 3 digits, no leading zeros on integers);
- VARIABLE: ``x_0`` .. ``x_15``;
- FUNCTION: ``Abs sqrt log exp sin cos tan atan asin acos tdiff tcumsum``;
- WINDOWED: ``tlag(u, k)`` with k in 1, 4, 16 and ``tmavg(u, w)`` with w in 4, 16,
  k and w written as integers;
- the exponent of ``**`` is a number literal (signs and parentheses allowed):
  an integer -3..3 other than 0, or +-0.5.

Anything else (attribute access, subscripts, strings, keyword arguments, other
names, names with ``__``, lambdas, comprehensions, comparisons, line breaks)
raises ``ExpressionError`` naming the token and its column, and so do texts
over ``MAX_LENGTH`` characters, nesting over ``MAX_DEPTH`` levels, and integer
constant subexpressions over ``MAX_INTEGER_DIGITS`` digits (``sympy.lambdify``
prints integers as Python ints, which ``((9**3)**3)**3...`` would blow up).

The tree is built as sympy's ``parse_expr`` with ``evaluate=False`` builds it
for the same text, node for node (``tests/test_safe_parser.py`` compares the
two on generated and hand-written expressions): numbers are ``Integer`` or
``Float`` of the exact decimal text; ``a - b`` is ``Add(a, Mul(-1, b))`` and
``a / b`` is ``Mul(a, Pow(b, -1))``, unevaluated; a ``+ -`` chain is one flat
``Add`` and a ``* /`` chain one flat ``Mul``, through parentheses too
(``(a + b) + c`` is ``Add(a, b, c)``: Python's syntax tree has no node for
them); a unary minus is sympy's negation of its operand; functions are applied with
``evaluate=False``; ``tdiff`` .. ``tmavg`` are undefined sympy functions. So
``lambdify`` of the tree performs the float64 operations the text spells out.
"""

import re
from dataclasses import dataclass

from s2gen.config import MAX_INPUT_DIM

MAX_LENGTH = 10_000  # characters; a sampled program renders to at most 16 * 277
MAX_DEPTH = 100  # nesting levels (parentheses, calls, signs, exponents); sampled programs < 82
MAX_NUMBER_LENGTH = 32
MAX_INTEGER_DIGITS = 300  # an integer constant subexpression stays below 1e300 (a float)
FUNCTIONS = ("Abs", "sqrt", "log", "exp", "sin", "cos", "tan", "atan", "asin", "acos")
TEMPORAL = ("tdiff", "tcumsum")
WINDOWS = {"tlag": (1, 4, 16), "tmavg": (4, 16)}
POWERS = (-3, -2, -1, 1, 2, 3)
KNOWN_FUNCTIONS = FUNCTIONS + TEMPORAL + tuple(WINDOWS)

_TOKEN = re.compile(
    r"(?P<space>[ \t]+)"
    r"|(?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/(),])",
    re.ASCII,
)
_VARIABLE = re.compile(r"x_(0|[1-9][0-9]*)", re.ASCII)
_WHY = {  # characters outside the language, with what they would be in Python
    "'": "strings are not part of the language",
    '"': "strings are not part of the language",
    ".": "attribute access is not part of the language",
    "[": "subscripts and lists are not part of the language",
    "]": "subscripts and lists are not part of the language",
    "{": "braces are not part of the language",
    "}": "braces are not part of the language",
    "=": "keyword arguments, assignments and comparisons are not part of the language",
    "<": "comparisons are not part of the language",
    ">": "comparisons are not part of the language",
    "!": "comparisons and factorials are not part of the language",
    ":": "lambdas, slices and dicts are not part of the language",
    ";": "statements are not part of the language",
    "\n": "line breaks are not part of the language",
    "\r": "line breaks are not part of the language",
    "^": "write powers as u**2",
}


class ExpressionError(ValueError):
    """An expression text outside s2gen's language, with the reason (which names the token).

    ``str`` is ``expression '<text>': <reason>``, or ``<field>='<text>' is
    invalid: <reason>`` once ``for_field`` names where the text came from.
    """

    def __init__(self, text: str, reason: str, field: str | None = None) -> None:
        super().__init__(text, reason, field)  # args as given: the error pickles
        self.text, self.reason, self.field = text, reason, field

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}={shorten(self.text)} is invalid: {self.reason}"
        return f"expression {shorten(self.text)}: {self.reason}"

    def for_field(self, field: str) -> "ExpressionError":
        """The same error, naming the field (e.g. ``expressions[0]``) the text came from."""
        return ExpressionError(self.text, self.reason, field)


def shorten(text: str, limit: int = 80) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters with its length said when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


@dataclass
class _Node:
    """A parsed subexpression: the sympy tree and what the parser needs to know of its text.

    ``chain`` is "Add" or "Mul" for a ``+ -`` or ``* /`` chain (spliced into an
    enclosing chain of the same kind); ``literal`` says ``expr`` is a signed
    number literal (possibly in parentheses); ``digits`` bounds the digits of an
    integer-valued constant subexpression (None otherwise).
    """

    expr: object
    start: int
    end: int
    chain: str | None = None
    literal: bool = False
    digits: int | None = None


class _Parser:
    """Recursive descent over the tokens; at most four Python frames per nesting level."""

    def __init__(self, text: str, sp) -> None:
        self.text = text
        self.sp = sp
        self.functions = {
            "Abs": sp.Abs,
            "sqrt": sp.sqrt,
            "log": sp.log,
            "exp": sp.exp,
            "sin": sp.sin,
            "cos": sp.cos,
            "tan": sp.tan,
            "atan": sp.atan,
            "asin": sp.asin,
            "acos": sp.acos,
        }
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def fail(self, reason: str):
        raise ExpressionError(self.text, reason)

    def peek(self) -> str:
        return self.tokens[self.pos][1]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, value: str, context: str) -> int:
        kind, text, column = self.take()
        if text != value:
            self.fail(
                f"cannot parse it: expected {value!r} {context}, found {_shown(kind, text)} "
                f"at column {column}"
            )
        return column

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            column = self.tokens[self.pos][2]
            self.fail(f"it nests deeper than {MAX_DEPTH} levels (at column {column})")

    def source(self, node: _Node) -> str:
        return shorten(self.text[node.start - 1 : node.end - 1], 40)

    def checked(self, node: _Node) -> _Node:
        if node.digits is not None and node.digits > MAX_INTEGER_DIGITS:
            self.fail(
                f"the integer constant {self.source(node)} at column {node.start} would have "
                f"more than {MAX_INTEGER_DIGITS} digits"
            )
        return node

    def parse(self) -> _Node:
        node = self.expression()
        kind, text, column = self.take()
        if kind != "end":
            self.fail(f"cannot parse it: unexpected {_shown(kind, text)} at column {column}")
        return node

    def expression(self) -> _Node:
        """A + - chain of * / chains, left to right (Python's precedence)."""
        self.enter()
        total, pending = None, None
        product = self.operand()
        while True:
            op = self.peek()
            if op in ("*", "/"):
                self.take()
                product = self.product(op, product, self.operand())
                continue
            total = product if total is None else self.sum(pending, total, product)
            if op not in ("+", "-"):
                break
            self.take()
            pending = op
            product = self.operand()
        self.depth -= 1
        return total

    def sum(self, op: str, left: _Node, right: _Node) -> _Node:
        digits = None
        if left.digits is not None and right.digits is not None:
            digits = max(left.digits, right.digits) + 1
        if op == "-":
            negated = self.sp.Mul(self.sp.Integer(-1), right.expr, evaluate=False)
            right = _Node(negated, right.start, right.end)
        return self.chain("Add", left, right, digits)

    def product(self, op: str, left: _Node, right: _Node) -> _Node:
        digits = None
        if op == "/":
            inverse = self.sp.Pow(right.expr, self.sp.Integer(-1), evaluate=False)
            right = _Node(inverse, right.start, right.end)
        elif left.digits is not None and right.digits is not None:
            digits = left.digits + right.digits
        return self.chain("Mul", left, right, digits)

    def chain(self, kind: str, left: _Node, right: _Node, digits: int | None) -> _Node:
        """``left op right`` as one flat Add or Mul; operand chains of its kind are spliced in."""
        args = []
        for side in (left, right):
            args.extend(side.expr.args if side.chain == kind else (side.expr,))
        cls = self.sp.Add if kind == "Add" else self.sp.Mul
        node = _Node(cls(*args, evaluate=False), left.start, right.end, kind, digits=digits)
        return self.checked(node)

    def operand(self) -> _Node:
        """Signs, then a primary with an optional ``** exponent`` (signs bind looser)."""
        signs = []
        while self.peek() in ("+", "-"):
            signs.append(self.take())
            self.enter()
        node = self.primary()
        if self.peek() == "**":
            self.take()
            self.enter()
            node = self.power(node, self.operand())
            self.depth -= 1
        for _, sign, column in reversed(signs):
            expr = -node.expr if sign == "-" else +node.expr
            node = _Node(expr, column, node.end, None, node.literal, node.digits)
            self.depth -= 1
        return node

    def power(self, base: _Node, exponent: _Node) -> _Node:
        if not exponent.literal:
            self.fail(
                f"the exponent {self.source(exponent)} at column {exponent.start} is not a "
                "number: powers are u**k with k an integer -3..3 or +-0.5 (exp and log do the rest)"
            )
        value = exponent.expr  # an Integer or a Float of the exact text
        integer = bool(value.is_Integer)
        if not (integer and int(value) in POWERS) and not (value.is_Float and abs(value) == 0.5):
            self.fail(
                f"the power {self.text[exponent.start - 1 : exponent.end - 1]} at column "
                f"{exponent.start} is not supported: "
                "use an integer -3..3 other than 0, or +-0.5 (u**0.5 is sqrt(u)), or exp/log"
            )
        digits = None
        if base.digits is not None and integer and value > 0:
            digits = base.digits * int(value)
        expr = self.sp.Pow(base.expr, exponent.expr, evaluate=False)
        return self.checked(_Node(expr, base.start, exponent.end, digits=digits))

    def primary(self) -> _Node:
        kind, text, column = self.take()
        if kind == "number":
            return self.number(text, column)
        if kind == "name" and self.peek() == "(":
            return self.call(text, column)
        if kind == "name":
            return self.variable(text, column)
        if text != "(":
            self.fail(
                "cannot parse it: expected a number, variable, function or '(', found "
                f"{_shown(kind, text)} at column {column}"
            )
        node = self.expression()
        end = self.expect(")", f"to close the '(' at column {column}")
        return _Node(node.expr, column, end + 1, node.chain, node.literal, node.digits)

    def number(self, text: str, column: int) -> _Node:
        if len(text) > MAX_NUMBER_LENGTH:
            self.fail(
                f"the number {shorten(text, 40)} at column {column} is longer than "
                f"{MAX_NUMBER_LENGTH} characters"
            )
        _, e, exponent = text.lower().partition("e")
        if len(exponent.lstrip("+-")) > 3:
            self.fail(f"the number {text!r} at column {column} has an exponent over 3 digits")
        end = column + len(text)
        if "." in text or e:
            return _Node(self.sp.Float(text), column, end, literal=True)
        if len(text) > 1 and text[0] == "0":
            self.fail(f"the integer {text!r} at column {column} has leading zeros")
        value = int(text)
        return _Node(self.sp.Integer(value), column, end, None, True, len(text))

    def variable(self, name: str, column: int) -> _Node:
        match = _VARIABLE.fullmatch(name)
        if match is None or int(match.group(1)) >= MAX_INPUT_DIM:
            if name in self.functions or name in TEMPORAL or name in WINDOWS:
                self.fail(f"{name} at column {column} is a function: write {name}(u)")
            self.fail(
                f"unknown symbol {name!r} at column {column}; "
                f"the inputs are x_0 .. x_{MAX_INPUT_DIM - 1}"
            )
        return _Node(self.sp.Symbol(name), column, column + len(name))

    def call(self, name: str, column: int) -> _Node:
        if name not in self.functions and name not in TEMPORAL and name not in WINDOWS:
            if _VARIABLE.fullmatch(name):
                self.fail(f"{name} at column {column} is a variable, not a function")
            self.fail(
                f"{shorten(name, 40)} at column {column} is not in s2gen's language "
                f"(see s2gen.symbols.parse); its functions are {', '.join(KNOWN_FUNCTIONS)}"
            )
        self.take()  # "("
        argument = self.expression()
        if name in WINDOWS:
            self.expect(",", f"after the series argument of {name}(u, k)")
            window = self.expression()
            choices = WINDOWS[name]
            if not (window.literal and window.expr.is_Integer and int(window.expr) in choices):
                self.fail(
                    f"{name}(u, k) takes k in {list(choices)}, got {self.source(window)} "
                    f"at column {window.start}"
                )
            expr = self.sp.Function(name)(argument.expr, window.expr)
            end = self.expect(")", f"to close {name}( at column {column} (it is {name}(u, k))")
        else:
            if name in TEMPORAL:
                expr = self.sp.Function(name)(argument.expr)
            else:
                expr = self.functions[name](argument.expr, evaluate=False)
            end = self.expect(")", f"to close {name}( at column {column} (it takes one argument)")
        digits = argument.digits if name == "Abs" else None
        return self.checked(_Node(expr, column, end + 1, digits=digits))


def _shown(kind: str, text: str) -> str:
    return "the end of the text" if kind == "end" else shorten(text, 40)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, column) of every token, ending with ("end", "", column); columns from 1."""
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            why = _WHY.get(char) or (
                "only ASCII letters, digits, spaces and + - * / ( ) , are allowed"
                if char.isascii()
                else "only ASCII characters are allowed"
            )
            raise ExpressionError(text, f"{char!r} at column {pos + 1}: {why}")
        kind = match.lastgroup
        if kind == "name" and "__" in match.group():
            raise ExpressionError(
                text,
                f"the name {shorten(match.group(), 40)} at column {pos + 1}: names with '__' "
                "are not part of the language",
            )
        if kind != "space":
            tokens.append((kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(("end", "", len(text) + 1))
    return tokens


def parse(text: str):
    """sympy tree of one expression text of s2gen's language (see the module docstring).

    Parameters
    ----------
    text : the expression, e.g. ``"sin(x_0) + 0.5*x_1"`` or a store's ``expr`` entry.

    Returns
    -------
    sympy.Expr, unevaluated, with the structure and exact constants of the text.

    Raises
    ------
    ExpressionError (a ValueError) naming the first token outside the language.
    """
    import sympy as sp

    if not isinstance(text, str):
        raise ExpressionError(repr(text), f"it is a {type(text).__name__}, not a string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            text, f"it has {len(text):,} characters; at most {MAX_LENGTH:,} are allowed"
        )
    if not text.strip():
        raise ExpressionError(text, "it is empty")
    return _Parser(text, sp).parse().expr
