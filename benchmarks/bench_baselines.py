#!/usr/bin/env python
"""Accuracy and wall time of the classical classification baselines, one thread.

Every baseline of ``s2gen evaluate`` (``--baselines`` and ``--dtw``) on each
dataset: one warm-up call (Numba compiles or loads its cache), then
``--rounds`` timed calls, baselines interleaved round by round so all see
the same machine load; the minimum wall time is reported (the machine is
shared). Accuracy is the same in every round (every baseline is seeded).

  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_baselines.py --rounds 3

Prints a JSON line per (dataset, baseline) and Markdown tables of accuracy and seconds.
"""

import argparse
import json
import os
import time

import numpy as np

from s2gen.evaluate import baselines
from s2gen.evaluate.datasets import load_classification
from s2gen.evaluate.protocols import ClassificationConfig

VISIBLE = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions")
RUNS = {
    "1nn-euclidean": baselines.nn1_euclidean,
    "logreg-raw": lambda *a: baselines.logreg_raw(*a, ClassificationConfig()),
    "catch22-rf": baselines.catch22_rf,
    "minirocket": baselines.minirocket_ridge,
    "1nn-dtw": baselines.nn1_dtw,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(VISIBLE))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if os.environ.get(name) != "1":
            print(f"# note: {name} is not 1; timings use more than one thread")
    accuracy, seconds = {}, {}
    for dataset in args.datasets:
        data = load_classification(dataset)
        split = (data.train.series, data.train.labels, data.test.series, data.test.labels)
        times = {model: [] for model in RUNS}
        for model, run in RUNS.items():
            accuracy[dataset, model] = run(*split)["accuracy"]  # warm-up
        for _ in range(args.rounds):
            for model, run in RUNS.items():
                start = time.perf_counter()
                run(*split)
                times[model].append(time.perf_counter() - start)
        for model in RUNS:
            seconds[dataset, model] = min(times[model])
            row = {"dataset": dataset, "baseline": model, "accuracy": accuracy[dataset, model]}
            print(json.dumps({**row, "seconds": round(seconds[dataset, model], 3)}), flush=True)
    for title, table, fmt in (("accuracy", accuracy, "{:.4f}"), ("seconds", seconds, "{:.2f}")):
        print(f"\n| {title} | " + " | ".join(RUNS) + " |")
        print("|---|" + "---:|" * len(RUNS))
        for dataset in args.datasets:
            cells = [fmt.format(table[dataset, model]) for model in RUNS]
            print(f"| {dataset} | " + " | ".join(cells) + " |")
        means = [fmt.format(np.mean([table[d, m] for d in args.datasets])) for m in RUNS]
        print("| mean | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
