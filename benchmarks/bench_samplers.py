#!/usr/bin/env python
"""Per-family excitation cost: s2gen beside the reference generator, one thread each.

For every sampler family, and every length asked for, in one run with
alternating rounds (s2gen, reference, s2gen, ...) so both see the same machine
load:

- s2gen channel draws/s: ``draw_channel`` of the family in a compiled loop;
- s2gen pairs/s: ``generate_batch`` with only that family (L, 1 -> 1, one
  Numba thread), i.e. with expression sampling, evaluation and rejection;
- reference channel draws/s: the family's class in ``s2generator`` 0.0.23
  (``cls().generate(rng, L, 1)``), in its own virtual environment with BLAS
  pinned to one thread (bench_generate.py creates it on first use); none for
  ``sarima`` (the reference's S2 pipeline has no SARIMA sampler).

``graph`` measures graph pairs (``--graph``; 1..3 KernelSynth inputs, 1..2
outputs, 6..10 nodes): pairs/s, and stored channels (inputs + outputs) per
second in the channels column.

  python benchmarks/bench_samplers.py --lengths 256 768 --rounds 3 --seconds 5

Prints a JSON line per measurement and a Markdown table of medians and ratios.
s2gen's rates are also given per second of process CPU time, which a shared
machine disturbs far less than wall time.
"""

import argparse
import json
import sys
from pathlib import Path

from bench_generate import ONE_THREAD, reference_python, run_json

FAMILIES = {  # s2gen name -> reference class (None: the reference's S2 pipeline has none)
    "mixture": "MixedDistribution",
    "arma": "AutoregressiveMovingAverage",
    "kernel_synth": "KernelSynth",
    "trend_season": "ForecastPFN",
    "imf": "IntrinsicModeFunction",
    "sarima": None,
    "graph": None,  # graph pairs (--graph), not a channel family: see S2GEN_GRAPH
}

S2GEN = r"""
import json, sys, time
import numpy as np
from numba import njit
from s2gen.config import GenerateConfig
from s2gen.generators.pairs import generate_batch, kernel_params
from s2gen.kernels.excitation import SAMPLER_CODES, draw_channel
from s2gen.kernels.rng import new_state
from s2gen.kernels.seeds import row_seeds

family, L, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
config = GenerateConfig(length=L, sampler_weights=((family, 1.0),))
p = kernel_params(config)

@njit
def draws(p, family, n, seed):
    state = new_state(np.uint64(seed))
    work = np.empty(p.sim_len)
    noise = np.empty(p.sim_len)
    out = np.empty(p.length)
    ok = 0
    for _ in range(n):
        ok += draw_channel(state, family, p, noise, work, out)
    return ok

code = SAMPLER_CODES[family]
draws(p, code, 2, 0)
n, t0, c0 = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < seconds / 2:
    draws(p, code, 64, n)
    n += 64
channels, channels_cpu = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
generate_batch(config, row_seeds(0, 0, 16))
n, t0, c0 = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < seconds / 2:
    generate_batch(config, row_seeds(1, n, n + 256))
    n += 256
pairs, pairs_cpu = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
print(json.dumps({"channels_per_s": channels, "pairs_per_s": pairs,
                  "channels_per_cpu_s": channels_cpu, "pairs_per_cpu_s": pairs_cpu}))
"""

S2GEN_GRAPH = r"""
import json, sys, time
from s2gen.config import GenerateConfig
from s2gen.generators.pairs import generate_batch
from s2gen.kernels.seeds import row_seeds

L, seconds = int(sys.argv[2]), float(sys.argv[3])
config = GenerateConfig(length=L, graph=True, max_input_dim=3, max_output_dim=2, min_nodes=6,
                        max_nodes=10)
generate_batch(config, row_seeds(0, 0, 16))
pairs = channels = 0
t0, c0 = time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < seconds:
    b = generate_batch(config, row_seeds(1, pairs, pairs + 64))
    pairs += 64
    channels += int(b.n_in.sum() + b.n_out.sum())
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"channels_per_s": channels / dt, "pairs_per_s": pairs / dt,
                  "channels_per_cpu_s": channels / cpu, "pairs_per_cpu_s": pairs / cpu}))
"""

REFERENCE = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import s2generator.excitation as ex
name, L, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sampler = getattr(ex, name)()
rng = np.random.RandomState(0)
sampler.generate(rng, L, 1)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    sampler.generate(rng, L, 1)
    n += 1
print(json.dumps({"channels_per_s": n / (time.perf_counter() - t0)}))
"""


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 768])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--ref-venv", default=str(Path(__file__).parent / ".ref-venv"))
    parser.add_argument("--log", default=None, help="Append the JSON records to this file.")
    args = parser.parse_args()
    with_reference = any(FAMILIES[f] for f in args.families)
    ref = reference_python(Path(args.ref_venv)) if with_reference else None
    rows = []
    for L in args.lengths:
        for family in args.families:
            ours, theirs = [], []
            for _ in range(args.rounds):
                script = S2GEN_GRAPH if family == "graph" else S2GEN
                cmd = [sys.executable, "-c", script, family, str(L), str(args.seconds)]
                ours.append(run_json(cmd, ONE_THREAD))
                if FAMILIES[family]:
                    cmd = [ref, "-c", REFERENCE, FAMILIES[family], str(L), str(args.seconds)]
                    theirs.append(run_json(cmd, ONE_THREAD))
            pairs = zip(ours, theirs, strict=True) if theirs else ()
            ratios = [a["channels_per_s"] / b["channels_per_s"] for a, b in pairs]
            record = {
                "family": family,
                "length": L,
                "s2gen_channels_per_s": median([r["channels_per_s"] for r in ours]),
                "s2gen_pairs_per_s": median([r["pairs_per_s"] for r in ours]),
                "s2gen_channels_per_cpu_s": median([r["channels_per_cpu_s"] for r in ours]),
                "s2gen_pairs_per_cpu_s": median([r["pairs_per_cpu_s"] for r in ours]),
                "reference_channels_per_s": median([r["channels_per_s"] for r in theirs])
                if theirs
                else None,
                "ratio_per_round": ratios,
                "median_ratio": median(ratios) if ratios else None,
            }
            print(json.dumps(record), file=sys.stderr)
            rows.append(record)
            if args.log:
                with open(args.log, "a") as f:
                    f.write(json.dumps(record) + "\n")
    print(
        "| family | L | s2gen channels/s | s2gen pairs/s | channels/CPU-s | pairs/CPU-s | "
        "reference channels/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref_rate, ratio = r["reference_channels_per_s"], r["median_ratio"]
        print(
            f"| {r['family']} | {r['length']} | {r['s2gen_channels_per_s']:,.0f} | "
            f"{r['s2gen_pairs_per_s']:,.0f} | {r['s2gen_channels_per_cpu_s']:,.0f} | "
            f"{r['s2gen_pairs_per_cpu_s']:,.0f} | "
            + (f"{ref_rate:,.1f} | {ratio:,.0f}x |" if ratio else "- | - |")
        )


if __name__ == "__main__":
    main()
