#!/usr/bin/env python
"""Before/after: the generation core of two source trees, by CPU time.

Each round runs the same single-thread loop (defaults: L=256, 1 -> 1, the
paper's mixture/ARMA mix, ``generate_batch`` of 8192 rows, no I/O) once with
each tree on ``PYTHONPATH``, alternating which goes first, and reports pairs
per second of process CPU time: on a shared machine CPU time is far steadier
than wall time. The ratio of each round (after / before) is printed with the
median and mean over rounds.

  git archive BASE | tar -x -C /tmp/base
  python benchmarks/bench_core_ab.py --before /tmp/base --after . --rounds 10 --seconds 8
"""

import argparse
import json
import statistics
import subprocess
import sys

CORE = r"""
import json, sys, time
from s2gen.config import GenerateConfig
from s2gen.generators.pairs import generate_batch
from s2gen.kernels.seeds import row_seeds
config = GenerateConfig(sampler_weights=())  # the paper's mix, the default before SARIMA
seconds, start = float(sys.argv[1]), int(sys.argv[2])
generate_batch(config, row_seeds(0, 0, 64))
done, c0, t0 = 0, time.process_time(), time.perf_counter()
while time.process_time() - c0 < seconds:
    generate_batch(config, row_seeds(0, start + done, start + done + 8192))
    done += 8192
print(json.dumps({"pairs": done, "cpu_pairs_per_s": done / (time.process_time() - c0),
                  "wall_pairs_per_s": done / (time.perf_counter() - t0)}))
"""
ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def rate(tree: str, seconds: float, start: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CORE, str(seconds), str(start)],
        env={**ONE_THREAD, "PYTHONPATH": tree},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="Source tree of the baseline.")
    parser.add_argument("--after", required=True, help="Source tree to compare.")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    trees = [("before", args.before), ("after", args.after)]
    for _, tree in trees:  # compile or load the kernels outside the timing
        rate(tree, 0.1, 0)
    ratios = []
    for r in range(args.rounds):
        got = {}
        for name, tree in trees if r % 2 == 0 else trees[::-1]:
            got[name] = rate(tree, args.seconds, r * 10**7)
            print(json.dumps({"round": r, "tree": name, **got[name]}), file=sys.stderr)
        ratios.append(got["after"]["cpu_pairs_per_s"] / got["before"]["cpu_pairs_per_s"])
    print(
        json.dumps(
            {
                "ratios": ratios,
                "median_ratio": statistics.median(ratios),
                "mean_ratio": statistics.mean(ratios),
                "standard_error": statistics.stdev(ratios) / len(ratios) ** 0.5,
            }
        )
    )


if __name__ == "__main__":
    main()
