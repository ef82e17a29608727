#!/usr/bin/env python
"""Generation throughput: the s2gen core beside the reference, and end-to-end runs.

Modes (run from the repository root with s2gen installed):

  core  s2gen's pair generation without I/O (L=256, 1 -> 1, the paper's mixture +
        ARMA mix, one thread) and, in the same run, the reference package ``s2generator``
        0.0.23 restricted to the same two samplers (MixedDistribution 0.3,
        ARMA 0.7). The reference lives in its own virtual environment, created
        here on first use (``--ref-venv``); it is never a dependency of s2gen.
        Rounds alternate s2gen / reference so that both see the same machine
        load; the ratio is reported per round.
  e2e   ``s2gen generate --n N`` (defaults, or ``--sampler-preset``) in a subprocess:
        wall time, pairs/s,
        peak RSS of the whole process tree, bytes on disk. The core is
        measured in the same layout (one single-thread process per worker,
        side by side, with expression strings and tokens, for ``--seconds``)
        before the first run and after every run; each run is divided by the
        mean of the core rates just before and just after it. Ratios are
        reported from the wall time and from the summary's rate (which
        leaves out the interpreter's start-up and the kernels' warm-up).

  python benchmarks/bench_generate.py core --rounds 3 --seconds 20
  python benchmarks/bench_generate.py e2e --n 2e6 --rounds 5 --seconds 15
  python benchmarks/bench_generate.py e2e --n 1e7 --rounds 1 --out /tmp/bench.zarr --keep
  python benchmarks/bench_generate.py e2e --n 1e7 --rounds 1 --sampler-preset paper

Each round prints a JSON line to stderr; the whole result is one JSON line on
stdout, also appended to ``--log``.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = "s2generator==0.0.23"

S2GEN_CORE = r"""
import json, sys, time
from s2gen.config import SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.pairs import generate_batch, token_length
from s2gen.kernels.seeds import row_seeds
seconds, start, with_symbols = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
preset = sys.argv[4]  # "" for generate's default mix
config = GenerateConfig(sampler_weights=SAMPLER_PRESETS[preset]) if preset else GenerateConfig()
generate_batch(config, row_seeds(0, 0, 64))  # load kernels
batch_rows, done, t0 = 8192, 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    b = generate_batch(config, row_seeds(0, start + done, start + done + batch_rows))
    if with_symbols:
        b.expressions(); b.tokens(token_length(config))
    done += batch_rows
dt = time.perf_counter() - t0
print(json.dumps({"pairs": done, "seconds": dt, "pairs_per_s": done / dt}))
"""

REFERENCE_CORE = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from s2generator.symbol import SeriesParams, SeriesSymbolGenerator, SymbolParams
params = SeriesParams(mixed_distribution=0.3, autoregressive_moving_average=0.7,
                      forecast_pfn=0.0, kernel_synth=0.0, intrinsic_mode_function=0.0)
gen = SeriesSymbolGenerator(params, SymbolParams())
seconds, seed = float(sys.argv[1]), int(sys.argv[2])
rng = np.random.RandomState(seed)
ok = attempts = 0
t0 = time.perf_counter()
while time.perf_counter() - t0 < seconds:
    symbol, x, y = gen.run(rng, seq_length=256, input_dimension=1, output_dimension=1)
    attempts += 1
    ok += symbol is not None
dt = time.perf_counter() - t0
print(json.dumps({"pairs": ok, "attempts": attempts, "seconds": dt, "pairs_per_s": ok / dt}))
"""

ONE_THREAD = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def reference_python(venv: Path) -> str:
    """Python of a venv holding the reference package (created on first use)."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {REFERENCE} (one-off)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", REFERENCE], check=True)
    return str(python)


def run_json(cmd: list[str], env: dict | None = None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def core(args) -> dict:
    ref = reference_python(Path(args.ref_venv))
    rounds = []
    for r in range(args.rounds):
        ours, with_symbols = (
            run_json(
                [sys.executable, "-c", S2GEN_CORE, str(args.seconds), str(r * 10**7), symbols]
                + ["paper"],  # the reference run draws the same two families
                ONE_THREAD,
            )
            for symbols in ("0", "1")
        )
        theirs = run_json([ref, "-c", REFERENCE_CORE, str(args.seconds), str(r)], ONE_THREAD)
        rounds.append(
            {
                "s2gen_pairs_per_s": ours["pairs_per_s"],
                "s2gen_with_symbols_pairs_per_s": with_symbols["pairs_per_s"],
                "reference_pairs_per_s": theirs["pairs_per_s"],
                "ratio": ours["pairs_per_s"] / theirs["pairs_per_s"],
            }
        )
        print(json.dumps(rounds[-1]), file=sys.stderr)
    ratios = sorted(r["ratio"] for r in rounds)
    return {
        "mode": "core",
        "threads": 1,
        "length": 256,
        "rounds": rounds,
        "median_ratio": ratios[len(ratios) // 2],
    }


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def parallel_core(workers: int, seconds: float, start: int, preset: str) -> float:
    """Summed pairs/s of ``workers`` one-thread core processes run side by side.

    The layout ``s2gen generate`` uses (one single-thread process per worker),
    with expression strings and tokens, without any I/O.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", S2GEN_CORE, str(seconds), str(start + i * 10**8), "1", preset],
            env={**os.environ, **ONE_THREAD},
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    return sum(json.loads(p.communicate()[0])["pairs_per_s"] for p in procs)


def run_generate(n: str, out: Path, workers: int, preset: str) -> dict:
    """One ``s2gen generate --n N`` subprocess: wall time, peak RSS of its tree, its summary."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "s2gen", "generate", "--n", n, "--out", str(out)]
    cmd += ["--workers", str(workers), "--quiet"]
    cmd += ["--sampler-preset", preset] if preset else []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(stderr)
    rows = json.loads((out / "zarr.json").read_text())["attributes"]["s2gen"]["rows"]
    # the summary's rate leaves out the interpreter's start-up and the kernels' warm-up
    steady = float(re.search(r"([\d,]+) pairs/s\)", stdout).group(1).replace(",", ""))
    return {
        "n": rows,
        "wall_s": wall,
        "pairs_per_s": rows / wall,
        "steady_pairs_per_s": steady,
        "peak_rss_mb": peak / 2**20,
        "bytes_on_disk": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
        "summary": stdout.strip(),
    }


def e2e(args) -> dict:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp()) / "bench.zarr"
    workers = args.workers or len(os.sched_getaffinity(0))
    preset = args.sampler_preset
    cores = [parallel_core(workers, args.seconds, 0, preset)]
    rounds = []
    for r in range(args.rounds):
        run = run_generate(args.n, out, workers, preset)
        cores.append(parallel_core(workers, args.seconds, (r + 1) * 10**9, preset))
        run["core_pairs_per_s"] = core_rate = (cores[-2] + cores[-1]) / 2  # before and after
        run["e2e_over_core"] = run["pairs_per_s"] / core_rate
        run["steady_over_core"] = run["steady_pairs_per_s"] / core_rate
        run["bytes_per_pair"] = run["bytes_on_disk"] / run["n"]
        rounds.append(run)
        print(json.dumps(run), file=sys.stderr)
        if not (args.keep and r == args.rounds - 1):
            shutil.rmtree(out)
    ratios = sorted(r["e2e_over_core"] for r in rounds)
    return {
        "mode": "e2e",
        "sampler_preset": preset or "default",
        "workers": workers,
        "core_pairs_per_s": cores,
        "rounds": rounds,
        "median_e2e_over_core": ratios[len(ratios) // 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("mode", choices=["core", "e2e"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ref-venv", default="benchmarks/.ref-venv")
    parser.add_argument("--n", default="1e6")
    parser.add_argument("--out", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the e2e store")
    parser.add_argument("--sampler-preset", default="", help="e2e: a preset (default: none)")
    parser.add_argument("--log", default="benchmarks/logs/generate.jsonl")
    args = parser.parse_args()
    result = core(args) if args.mode == "core" else e2e(args)
    result["when"] = time.strftime("%Y-%m-%d %H:%M")
    line = json.dumps(result)
    print(line)
    with open(args.log, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
