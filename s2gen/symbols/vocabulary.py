"""The closed token vocabulary and the program <-> token conversions.

Layout (ids are stable; new operators are appended at the end):

=========  ==========================================================
ids        tokens
=========  ==========================================================
0..4       ``<pad>`` ``<bos>`` ``<eos>`` ``<mask>`` ``<sep>``
5..20      variables ``x_0`` .. ``x_15``
21, 22     constant signs ``+`` ``-``
23..32     mantissa digits ``0`` .. ``9``
33..48     exponents ``E-8`` .. ``E+7``
49..       operators in registry order (``add`` ``sub`` ``mul`` ...)
=========  ==========================================================

An expression is stored as its prefix tokens only (no ``<bos>``/``<eos>``),
padded with ``<pad>`` = 0. A constant ``-0.092`` is the five tokens
``- 0 9 2 E-3`` (sign, three mantissa digits, exponent), so every constant
round-trips exactly (``s2gen.kernels.constants``).
"""

import numpy as np

from s2gen.config import MAX_INPUT_DIM
from s2gen.kernels import opcodes as oc
from s2gen.kernels.constants import EXP_MAX, EXP_MIN, pack
from s2gen.kernels.render import TOKENS_PER_CONSTANT, encode_tokens
from s2gen.symbols.operators import BY_NAME, OPERATORS

SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>", "<sep>")
PAD, BOS, EOS, MASK, SEP = range(len(SPECIALS))
VARIABLES = tuple(f"x_{i}" for i in range(MAX_INPUT_DIM))
SIGNS = ("+", "-")
DIGITS = tuple(str(d) for d in range(10))
EXPONENTS = tuple(f"E{e:+d}" for e in range(EXP_MIN, EXP_MAX + 1))

TOKENS: tuple[str, ...] = (
    SPECIALS + VARIABLES + SIGNS + DIGITS + EXPONENTS + tuple(op.name for op in OPERATORS)
)
INDEX: dict[str, int] = {tok: i for i, tok in enumerate(TOKENS)}
VAR_BASE = INDEX["x_0"]
PLUS = INDEX["+"]
MINUS = INDEX["-"]
DIGIT_BASE = INDEX["0"]
EXP_BASE = INDEX[EXPONENTS[0]]
OP_TOKEN = np.zeros(oc.N_CODES, np.int64)
for _op in OPERATORS:
    OP_TOKEN[_op.code] = INDEX[_op.name]


def vocabulary() -> list[str]:
    """The token strings, index = id (saved in stores and checkpoints)."""
    return list(TOKENS)


def max_tokens(max_program_length: int, max_constants: int) -> int:
    """Token budget T of a program: one per node plus four more per constant."""
    return max_program_length + (TOKENS_PER_CONSTANT - 1) * max_constants


def program_to_tokens(code: np.ndarray, arg: np.ndarray, length: int | None = None) -> np.ndarray:
    """Prefix token ids (int16) of one program."""
    length = len(code) if length is None else length
    out = np.zeros(length * TOKENS_PER_CONSTANT, np.int16)
    n = encode_tokens(
        np.asarray(code, np.int8),
        np.asarray(arg, np.int32),
        length,
        OP_TOKEN,
        VAR_BASE,
        PLUS,
        MINUS,
        DIGIT_BASE,
        EXP_BASE,
        out,
    )
    return out[:n]


def tokens_to_program(tokens) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``program_to_tokens``; trailing ``<pad>`` is ignored.

    Raises ValueError naming the position of a token that cannot start a node
    or of a malformed constant.
    """
    ids = [int(t) for t in tokens]
    while ids and ids[-1] == PAD:
        ids.pop()
    code: list[int] = []
    arg: list[int] = []
    pos = 0
    while pos < len(ids):
        tok = ids[pos]
        if not 0 <= tok < len(TOKENS):
            raise ValueError(f"token id {tok} at position {pos} is outside the vocabulary")
        name = TOKENS[tok]
        if name in BY_NAME:
            code.append(BY_NAME[name].code)
            arg.append(0)
            pos += 1
        elif VAR_BASE <= tok < VAR_BASE + MAX_INPUT_DIM:
            code.append(oc.VAR)
            arg.append(tok - VAR_BASE)
            pos += 1
        elif tok in (PLUS, MINUS):
            body = ids[pos + 1 : pos + TOKENS_PER_CONSTANT]
            digits = [t - DIGIT_BASE for t in body[:3]]
            exponent = body[3] - EXP_BASE + EXP_MIN if len(body) == 4 else EXP_MIN - 1
            if (
                len(body) < 4
                or not all(0 <= d <= 9 for d in digits)
                or not EXP_MIN <= exponent <= EXP_MAX
            ):
                raise ValueError(f"malformed constant at token position {pos}")
            mantissa = digits[0] * 100 + digits[1] * 10 + digits[2]
            if mantissa == 0:
                raise ValueError(f"constant with mantissa 000 at token position {pos}")
            code.append(oc.CONST)
            arg.append(int(pack(1 if tok == PLUS else -1, mantissa, exponent)))
            pos += TOKENS_PER_CONSTANT
        else:
            raise ValueError(f"token {name!r} at position {pos} cannot start an expression node")
    return np.array(code, np.int8), np.array(arg, np.int32)


def decode_names(tokens) -> list[str]:
    """Token strings of an id sequence, padding dropped (for display)."""
    return [TOKENS[int(t)] for t in tokens if int(t) != PAD]
