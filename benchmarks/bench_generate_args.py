#!/usr/bin/env python
"""One end-to-end ``s2gen generate`` with any options: wall and CPU time, peak RSS, size.

For settings that ``bench_generate.py e2e`` (defaults only) does not cover, e.g.

  python benchmarks/bench_generate_args.py --out /tmp/all.zarr -- --n 1e6 --sampler-preset all

Peak RSS is the whole process tree's, sampled every 0.2 s; CPU time is that
of the command and its workers (``RUSAGE_CHILDREN``), so pairs per CPU-second
is a rate that a shared machine disturbs little. Prints one JSON line, also
appended to ``--log``.
"""

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_generate import _tree_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="Store path (replaced).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log", default="benchmarks/logs/generate_args.jsonl")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="-- then generate's options")
    args = parser.parse_args()
    options = [o for o in args.options if o != "--"]
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "s2gen", "generate", *options, "--out", str(out)]
    cmd += ["--workers", str(args.workers), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(stderr)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    rows = json.loads((out / "zarr.json").read_text())["attributes"]["s2gen"]["rows"]
    steady = float(re.search(r"([\d,]+) pairs/s\)", stdout).group(1).replace(",", ""))
    record = {
        "options": options,
        "workers": args.workers,
        "rows": rows,
        "wall_s": wall,
        "pairs_per_s": rows / wall,
        "steady_pairs_per_s": steady,
        "cpu_s": cpu,
        "pairs_per_cpu_s": rows / cpu,
        "peak_rss_mb": peak / 2**20,
        "bytes_on_disk": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
        "load_average": open("/proc/loadavg").read().split()[:3],
        "summary": stdout.strip(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    line = json.dumps(record)
    print(line)
    with open(args.log, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
