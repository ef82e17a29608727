"""Where does transfer come from? A resumable grid of pretraining runs, each probed on real data.

A *cell* is one pretraining run (data, recipe, steps) followed by the frozen
evaluation of its encoder: linear-probe accuracy on the four visible
classification sets and ridge-probe MSE on the four visible forecasting
series (``s2gen.evaluate``). Every finished cell appends one JSON record to
``--records`` (default ``benchmarks/logs/transfer.jsonl``); a rerun skips the
cells already recorded (same settings: cells of different grids with the same
store, steps and recipe share one record), and a cell whose run was killed
resumes its training exactly (``--resume``), so a grid can span several
working sessions. Stores are generated once into ``--work``.

    python benchmarks/bench_transfer.py --grid scale --grid mix      # run (or finish) grids
    python benchmarks/bench_transfer.py --list                       # cells and their state
    python benchmarks/bench_transfer.py --plot benchmarks/figures    # one figure per grid

Only the visible sets are ever evaluated here (GunPoint, ArrowHead,
ItalyPowerDemand, BasicMotions; airline, sunspots, co2, lynx): settings are
chosen on them. Other shipped datasets are for the final check only.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSIFICATION = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions")
FORECASTING = ("airline", "sunspots", "co2", "lynx")
HORIZON = 12
STEPS = 1500  # equal compute per cell: `small`, batch 128, about 1.9e5 windows

# store name -> `s2gen generate` options (length 512 leaves room for 2x downsampled views)
STORES = {
    "ref-1e3": ["--n", "1000", "--sampler-preset", "reference", "--length", "512"],
    "ref-1e4": ["--n", "10000", "--sampler-preset", "reference", "--length", "512"],
    "ref-1e5": ["--n", "100000", "--sampler-preset", "reference", "--length", "512"],
    "ref-1e6": ["--n", "1000000", "--sampler-preset", "reference", "--length", "512"],
    "paper-1e5": ["--n", "100000", "--length", "512"],
    **{
        f"{family}-1e5": ["--n", "100000", "--samplers", f"{family}=1", "--length", "512"]
        for family in ("mixture", "arma", "kernel_synth", "trend_season", "imf")
    },
}
SMALL_STORE_LAYOUT = ["--chunk-rows", "256", "--shard-rows", "4096"]  # enough chunks for 1e3 rows


def cell(name, store, steps=STEPS, seeds=(0,), **settings) -> dict:
    """One grid cell: pretrain on ``store`` for ``steps`` with ``settings`` over `small`."""
    spec = {"name": name, "store": store, "steps": steps, "seeds": list(seeds)}
    return {**spec, "settings": settings}


S2_ONLY = {"objective": "s2"}
GRIDS = {
    # (a) distinct pretraining pairs at equal steps
    "scale": [cell(f"scale-{n}", f"ref-{n}") for n in ("1e3", "1e4", "1e5", "1e6")],
    # (b) sampler mix
    "mix": [cell("mix-paper", "paper-1e5"), cell("mix-reference", "ref-1e5")]
    + [
        cell(f"mix-{family}", f"{family}-1e5")
        for family in ("mixture", "arma", "kernel_synth", "trend_season", "imf")
    ],
    # (c) objective terms
    "objective": [
        cell("obj-s2", "ref-1e5", **S2_ONLY),
        cell("obj-s2-no-contrast", "ref-1e5", objective="s2", w_itc=0.0),
        cell("obj-s2+timedrl", "ref-1e5", objective="s2+timedrl"),
        cell("obj-timedrl", "ref-1e5", objective="timedrl", w_rec=1.0),
    ],
    # (d) the same architecture untrained
    "random": [cell("random-init", None, steps=0, seeds=(0, 1, 2))],
}


def settings_hash(spec: dict) -> str:
    """Short hash of what a cell computes: a changed cell is a new cell, a renamed one is not."""
    text = json.dumps({k: spec[k] for k in ("store", "steps", "seeds", "settings")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ensure_store(work: Path, name: str) -> str:
    """Generate the named store once (a rerun of `generate` resumes or finds it complete)."""
    path = work / "stores" / name
    n = int(float(STORES[name][1]))
    layout = SMALL_STORE_LAYOUT if n < 100_000 else []
    command = [sys.executable, "-m", "s2gen", "generate", "--out", str(path), "--quiet"]
    subprocess.run(command + STORES[name] + layout, check=True, cwd=ROOT)
    return str(path)


def pretrain(work: Path, spec: dict, store: str, seed: int, threads: int) -> Path:
    """Train one cell's encoder (resuming a killed run); return its run directory."""
    import torch

    from s2gen.pretrain import PretrainConfig, run

    torch.set_num_threads(threads)
    out = work / "runs" / f"{settings_hash(spec)}-seed{seed}"
    cfg = PretrainConfig.preset(
        "small",
        steps=spec["steps"],
        seed=seed,
        val_every=max(1, spec["steps"] // 3),
        ckpt_every=max(1, spec["steps"] // 6),
        num_workers=1,
        **spec["settings"],
    )
    run(cfg, store, str(out), resume=True, device="cpu", progress=False)
    return out


def probe(make_embed, seeded: bool, seeds) -> dict:
    """Frozen-probe metrics of one encoder on the visible sets (means over ``seeds`` if seeded)."""
    from s2gen.evaluate.protocols import ForecastConfig
    from s2gen.evaluate.suite import ModelSpec, SuiteConfig, run_suite

    out = {}
    model = ModelSpec("encoder", make_embed, seeded=seeded)
    for task, datasets in (("classification", CLASSIFICATION), ("forecasting", FORECASTING)):
        cfg = SuiteConfig(
            task=task,
            datasets=datasets,
            seeds=tuple(seeds),
            baselines=False,
            forecast=ForecastConfig(HORIZON) if task == "forecasting" else None,
        )
        for record in run_suite([model], cfg):
            metric = "accuracy" if task == "classification" else "mse"
            out.setdefault(record["dataset"], []).append(record["metrics"][metric])
    return {name: sum(v) / len(v) for name, v in out.items()}


def run_cell(work: Path, spec: dict, threads: int) -> dict:
    """Pretrain (per seed) and probe one cell; its record."""
    import numpy as np

    from s2gen.pretrain import load_encoder, random_encoder

    started = time.time()
    results, finals = [], []
    for seed in spec["seeds"]:
        if spec["store"] is None:  # the untrained architecture
            results.append(probe(lambda s: random_encoder("small", seed=s).embed, True, [seed]))
            continue
        store = ensure_store(work, spec["store"])
        t0 = time.time()
        out = pretrain(work, spec, store, seed, threads)
        final = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        val = [m for m in final if "val_loss" in m]
        finals.append({**(val[-1] if val else {}), "train_wall_s": time.time() - t0})
        encoder = load_encoder(out / "last.pt")
        results.append(probe(lambda s, e=encoder: e.embed, False, [0]))
    names = results[0].keys()
    metrics = {k: float(np.mean([r[k] for r in results])) for k in names}
    spread = {k: float(np.std([r[k] for r in results])) for k in names} if len(results) > 1 else {}
    return {
        "cell": spec["name"],
        "hash": settings_hash(spec),
        "spec": spec,
        "metrics": metrics,
        "spread": spread,
        "mean_accuracy": float(np.mean([metrics[d] for d in CLASSIFICATION])),
        "per_seed": results,
        "pretraining": finals,
        "wall_s": time.time() - started,
        "commit": _commit(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip()


def plot(records: list[dict], out_dir: Path) -> None:
    """One bar chart per grid: mean visible accuracy per cell (random init as a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_hash = {r["hash"]: r for r in records}
    random = by_hash.get(settings_hash(GRIDS["random"][0]))
    out_dir.mkdir(parents=True, exist_ok=True)
    for grid, cells in GRIDS.items():
        cells = [c for c in cells if settings_hash(c) in by_hash]
        done = [by_hash[settings_hash(c)] for c in cells]
        if grid == "random" or not done:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        names = [c["name"] for c in cells]
        axes[0].bar(names, [r["mean_accuracy"] for r in done], color="C0")
        axes[0].set(title=f"{grid}: mean frozen-probe accuracy (4 visible sets)", ylim=(0.5, 1.0))
        fc = [sum(r["metrics"][s] for s in FORECASTING) / len(FORECASTING) for r in done]
        axes[1].bar(names, fc, color="C1")
        axes[1].set(title=f"{grid}: mean ridge-probe MSE (4 series, H={HORIZON})")
        if random:
            axes[0].axhline(random["mean_accuracy"], color="grey", ls="--", label="random init")
            rfc = sum(random["metrics"][s] for s in FORECASTING) / len(FORECASTING)
            axes[1].axhline(rfc, color="grey", ls="--", label="random init")
            axes[0].legend(fontsize=7)
        for ax in axes:
            ax.tick_params(axis="x", rotation=30, labelsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"transfer_{grid}.png", dpi=120)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", action="append", default=[], choices=sorted(GRIDS))
    parser.add_argument("--only", action="append", default=[], help="cell names to run")
    parser.add_argument("--records", default=str(ROOT / "benchmarks/logs/transfer.jsonl"))
    parser.add_argument("--work", default=os.environ.get("S2GEN_WORK", "/tmp/s2gen-transfer"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--list", action="store_true", help="list cells and whether recorded")
    parser.add_argument("--plot", metavar="DIR", help="draw the recorded grids into DIR")
    args = parser.parse_args()
    records_path = Path(args.records)
    records = read_records(records_path)
    done = {r["hash"] for r in records}
    if args.plot:
        plot(records, Path(args.plot))
        return
    cells = [c for g in args.grid or sorted(GRIDS) for c in GRIDS[g]]
    if args.only:
        cells = [c for c in cells if c["name"] in args.only]
    for spec in cells:
        key = settings_hash(spec)
        if args.list:
            print(f"{spec['name']:<28} {'recorded' if key in done else 'to run'}")
            continue
        if key in done:
            print(f"skip {spec['name']} (recorded)", flush=True)
            continue
        done.add(key)
        print(f"run {spec['name']}", flush=True)
        record = run_cell(Path(args.work), spec, args.threads)
        records_path.parent.mkdir(parents=True, exist_ok=True)
        with records_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: record[k] for k in ("cell", "mean_accuracy", "wall_s")}), flush=True)


if __name__ == "__main__":
    main()
