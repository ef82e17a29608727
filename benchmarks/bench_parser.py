#!/usr/bin/env python
"""Cost of reading expression text: s2gen's parser beside sympy's, per expression.

``s2gen validate`` parses and lambdifies every output of its sampled rows
(1000 by default), so this is the parser's share of a validation. For the
stored strings of ``--n`` sampled programs (default config, and every operator
at weight 1 with the temporal ones), in alternating rounds so both see the same
machine load:

- parse: ``s2gen.symbols.grammar.parse`` beside sympy's ``parse_expr(text,
  evaluate=False)`` (the old reader; here only as a yardstick, on trusted text);
- lambdify: parse, ``sympy.lambdify`` and one call on a series of 256 points,
  the work ``s2gen.symbols.render.lambdify`` does per row and output.

  python benchmarks/bench_parser.py --n 1000 --rounds 3

Prints a JSON line per round and a Markdown table of medians (ms per expression).
"""

import argparse
import json
import statistics
import time

import numpy as np
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from s2gen.config import GenerateConfig
from s2gen.generators.expressions import sample_programs
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols.grammar import parse
from s2gen.symbols.operators import OPERATORS
from s2gen.symbols.render import to_infix
from s2gen.symbols.temporal import TEMPORAL_FUNCTIONS

CONFIGS = {
    "default (1 input)": (GenerateConfig(), 1),
    "every operator (3 inputs)": (
        GenerateConfig(max_input_dim=3, operator_weights=tuple((op.name, 1.0) for op in OPERATORS)),
        3,
    ),
}
READERS = {
    "s2gen parse": parse,
    "sympy parse_expr": lambda text: parse_expr(text, evaluate=False),
}


def texts_of(config: GenerateConfig, n_vars: int, n: int) -> list[str]:
    code, arg, plen = sample_programs(config, row_seeds(1, 0, n), n_vars)
    return [to_infix(code[i], arg[i], plen[i]) for i in range(n)]


def per_expression_ms(texts, reader, x, lambdified: bool) -> float:
    symbols = [sp.Symbol(f"x_{i}") for i in range(len(x))]
    sp.core.cache.clear_cache()  # each round starts cold, as a fresh `s2gen validate` does
    start = time.perf_counter()
    for text in texts:
        tree = reader(text)
        if lambdified:
            fn = sp.lambdify(symbols, tree, modules=[TEMPORAL_FUNCTIONS, "numpy"])
            with np.errstate(all="ignore"):
                fn(*x)
    return (time.perf_counter() - start) / len(texts) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="expressions per configuration")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str, str], list[float]] = {}
    for name, (config, n_vars) in CONFIGS.items():
        texts = texts_of(config, n_vars, args.n)
        x = np.random.default_rng(0).standard_normal((n_vars, 256))
        for r in range(args.rounds):
            for reader_name, reader in READERS.items():
                for step, lambdified in (("parse", False), ("parse + lambdify", True)):
                    ms = per_expression_ms(texts, reader, x, lambdified)
                    results.setdefault((name, step, reader_name), []).append(ms)
                    record = {"config": name, "step": step, "reader": reader_name}
                    print(json.dumps({**record, "round": r, "ms_per_expression": round(ms, 4)}))
    print(
        "\n| expressions | step | s2gen parse | sympy parse_expr | ratio |\n|---|---|---|---|---|"
    )
    for name in CONFIGS:
        for step in ("parse", "parse + lambdify"):
            ours = statistics.median(results[(name, step, "s2gen parse")])
            theirs = statistics.median(results[(name, step, "sympy parse_expr")])
            print(f"| {name} | {step} | {ours:.3f} ms | {theirs:.3f} ms | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
