#!/usr/bin/env python
"""Does OATS help? Baseline vs OATS vs OATS with random guides, several seeds.

Same store, same pretraining budget and preset for every arm; arms differ only
in the batch hook:

  baseline  plain pretraining;
  oats      TSIS selection (reference split, SNR gate) + guided generation;
  random    the same generator and batch mixing, guides drawn at random
            (no scoring, no gate): separates "more synthetic data" from
            "influence-chosen guides".

Held-out metrics are the pretraining validation metrics on the store's "val"
split (never trained on, disjoint from the TSIS reference split): masked-series
loss ``val_mts``, total ``val_loss`` and series<->symbol retrieval
``val_t2s_top1`` / ``val_t2s_top10``. The default regime is data-scarce (a
small store seen for many epochs), where augmentation can matter.

  python benchmarks/bench_oats.py --out /tmp/bench_oats                 # full (CPU: hours)
  python benchmarks/bench_oats.py --out /tmp/bench_oats_smoke --quick   # smoke test (minutes)

Prints a Markdown table: per arm mean and 95 % t-interval over seeds, and the
paired (same seed) difference to the baseline with its 95 % t-interval.
Writes every run's metrics to ``OUT/results.json``.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

METRICS = ("val_mts", "val_loss", "val_t2s_top1", "val_t2s_top10")
ARMS = ("baseline", "oats", "random")
# two-sided 95 % Student-t quantiles t_{0.975, df}, df = 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (nan half-width for one value)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), math.nan
    t = T975[min(len(x) - 1, len(T975)) - 1]
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(len(x)))


def make_store(path: Path, n: int, length: int) -> None:
    from click.testing import CliRunner

    from s2gen.cli import main

    if path.exists():
        return
    args = ["generate", "--n", str(n), "--out", str(path), "--length", str(length)]
    result = CliRunner().invoke(main, [*args, "--seed", "0", "--quiet"])
    if result.exit_code:
        raise SystemExit(result.output)


def make_generator(path: Path, store: Path, window: int, subset: float, steps: int) -> dict:
    from s2gen import store as s2store
    from s2gen.oats.config import GeneratorConfig
    from s2gen.oats.data import crop_windows, store_subset
    from s2gen.oats.generator import Generator, train_generator

    if path.exists():
        return {"generator_seconds": None, "generator_loss_last100": None}
    series, _ = store_subset(s2store.open(str(store)), subset, seed=0, field="y")
    series = crop_windows(series, window, seed=0)
    started = time.perf_counter()
    generator = train_generator(series, GeneratorConfig(steps=steps, subset=subset))
    generator.save(path)
    Generator.load(path)  # fail here, not in every arm
    return {
        "generator_seconds": time.perf_counter() - started,
        "generator_series": len(series),
        "generator_loss_first10": float(np.mean(generator.history[:10])),
        "generator_loss_last100": float(np.mean(generator.history[-100:])),
    }


def run_arm(arm: str, seed: int, args, store: Path, gen: Path) -> dict:
    from s2gen.oats.wiring import oats_hook_from_options
    from s2gen.pretrain.config import PretrainConfig
    from s2gen.pretrain.train import run

    cfg = PretrainConfig.preset(
        args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        window=args.window,
        seed=seed,
        val_every=args.steps,
        ckpt_every=args.steps,
        log_every=max(1, args.steps // 20),
    )
    hook = None
    if arm != "baseline":
        hook = oats_hook_from_options(
            cfg,
            str(store),
            str(gen),
            explore_prob=args.explore_prob,
            selection="tsis" if arm == "oats" else "random",
        )
    out = Path(args.out) / f"{arm}-seed{seed}"
    started = time.perf_counter()
    final = run(cfg, str(store), str(out), device="cpu", batch_hook=hook, progress=False)
    record = {"arm": arm, "seed": seed, "seconds": time.perf_counter() - started}
    record.update({k: final[k] for k in METRICS if k in final})
    lines = (out / "metrics.jsonl").read_text().splitlines()
    shares = [json.loads(ln).get("oats_generated_share") for ln in lines]
    shares = [s for s in shares if s is not None]
    record["generated_share"] = float(np.mean(shares)) if shares else 0.0
    return record


def table(records: list[dict]) -> str:
    rows = ["| arm | " + " | ".join(METRICS) + " | s/run |", "|---" * (len(METRICS) + 2) + "|"]
    by_arm = {a: [r for r in records if r["arm"] == a] for a in ARMS}
    for arm, recs in by_arm.items():
        cells = []
        for m in METRICS:
            mean, half = interval([r[m] for r in recs])
            cells.append(f"{mean:.4f} ± {half:.4f}")
        mean_s, _ = interval([r["seconds"] for r in recs])
        rows.append(f"| {arm} (n={len(recs)}) | " + " | ".join(cells) + f" | {mean_s:.0f} |")
    base = {r["seed"]: r for r in by_arm["baseline"]}
    for arm in ARMS[1:]:
        cells = []
        for m in METRICS:
            diffs = [r[m] - base[r["seed"]][m] for r in by_arm[arm] if r["seed"] in base]
            mean, half = interval(diffs)
            cells.append(f"{mean:+.4f} ± {half:.4f}")
        rows.append(f"| {arm} − baseline (paired) | " + " | ".join(cells) + " | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="Work directory (store, generator, runs).")
    parser.add_argument("--n", type=int, default=10_000, help="Store rows (data-scarce default).")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--preset", default="ci")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--gen-steps", type=int, default=2000)
    parser.add_argument("--gen-subset", type=float, default=0.25)
    parser.add_argument("--explore-prob", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="Tiny smoke-test sizes.")
    args = parser.parse_args()
    if args.quick:
        args.n, args.steps, args.seeds, args.gen_steps = 1024, 20, 2, 20

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store, gen = out / "s2.zarr", out / "gen.pt"
    make_store(store, args.n, args.length)
    info = make_generator(gen, store, args.window, args.gen_subset, args.gen_steps)
    results_path = out / "results.json"
    records = json.loads(results_path.read_text())["runs"] if results_path.exists() else []
    done = {(r["arm"], r["seed"]) for r in records}
    for seed in range(args.seeds):
        for arm in ARMS:
            if (arm, seed) in done:
                continue
            records.append(run_arm(arm, seed, args, store, gen))
            print(json.dumps(records[-1]), flush=True)
            results_path.write_text(json.dumps({"args": vars(args), **info, "runs": records}))
    print(table(records))


if __name__ == "__main__":
    main()
