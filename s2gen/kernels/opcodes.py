"""Integer opcodes of expression programs, shared by every kernel.

A program is a prefix (Polish) sequence of nodes, each a pair ``(code, arg)``:

- ``VAR``: ``arg`` is the input channel index (``x_arg``);
- ``CONST``: ``arg`` packs a decimal constant ``sign * mantissa * 10**e``
  (``s2gen.kernels.constants``): it prints exactly and its float64 value is
  what Python's ``float`` of that text gives;
- an operator: ``arg`` is unused (0).

The operator table with names, weights and symbolic forms lives in
``s2gen.symbols.operators``; this module only fixes the numbers, which Numba
treats as compile-time constants. Changing a number here means clearing the
Numba cache (``__pycache__/*.nbi``).
"""

END = 0
VAR = 1
CONST = 2

ADD = 3
SUB = 4
MUL = 5
DIV = 6

INV = 7
SQRT = 8
POW2 = 9
POW3 = 10
ABS = 11
LOG = 12
EXP = 13
SIN = 14
COS = 15
TAN = 16
ARCTAN = 17
ARCSIN = 18
ARCCOS = 19
# temporal operators act along time (s2gen.symbols.temporal defines them)
DIFF = 20
CUMSUM = 21
LAG1 = 22
LAG4 = 23
LAG16 = 24
MAVG4 = 25
MAVG16 = 26

FIRST_BINARY = ADD
LAST_BINARY = DIV
FIRST_UNARY = INV
FIRST_TEMPORAL = DIFF
LAST_UNARY = MAVG16
N_CODES = LAST_UNARY + 1
