"""Expression programs on their own: sampling and evaluation outside a pair.

Used to study the expression distribution, to evaluate a program on series a
user supplies, and by the tests against numpy and sympy twins.
"""

import numpy as np

from s2gen.config import GenerateConfig
from s2gen.generators.pairs import kernel_params, program_length
from s2gen.kernels import opcodes as oc
from s2gen.kernels.interpreter import evaluate
from s2gen.kernels.pairs import programs_rows


def sample_programs(
    config: GenerateConfig, seeds: np.ndarray, n_vars: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One program per seed over variables x_0..x_{n_vars-1}.

    Returns code int8[n, P], arg int32[n, P], plen int16[n] (P from the config).
    """
    if not 1 <= n_vars <= config.max_input_dim:
        raise ValueError(
            f"n_vars={n_vars} is invalid: it must be in [1, max_input_dim={config.max_input_dim}]"
        )
    seeds = np.ascontiguousarray(seeds, np.uint64)
    P = program_length(config)
    code = np.zeros((seeds.size, P), np.int8)
    arg = np.zeros((seeds.size, P), np.int32)
    plen = np.zeros(seeds.size, np.int16)
    programs_rows(kernel_params(config), seeds, n_vars, code, arg, plen)
    return code, arg, plen


def evaluate_program(
    code: np.ndarray,
    arg: np.ndarray,
    x: np.ndarray,
    length: int | None = None,
    with_trig_argument: bool = False,
):
    """f(x) in float64 for one program; x is [M, L] with M covering its variables.

    With ``with_trig_argument`` it returns ``(f(x), a)`` where ``a`` is the
    largest |argument| any sin/cos/tan received (see ``s2gen.kernels.interpreter``).
    """
    code = np.ascontiguousarray(code, np.int8)
    arg = np.ascontiguousarray(arg, np.int32)
    length = code.size if length is None else int(length)
    x = np.ascontiguousarray(np.atleast_2d(x), np.float64)
    used = arg[:length][code[:length] == oc.VAR]
    if used.size and used.max() >= x.shape[0]:
        raise ValueError(f"the program uses x_{used.max()} but x has only {x.shape[0]} channel(s)")
    depth = length + 1
    out = np.empty(x.shape[1])
    trig_argument = evaluate(
        code,
        arg,
        length,
        x,
        np.empty((depth, x.shape[1])),
        np.empty(depth),
        np.empty(depth, np.bool_),
        out,
    )
    return (out, trig_argument) if with_trig_argument else out
