"""Pretraining throughput and a recorded `small` run (figures go to BENCHMARKS.md).

Rates (default):
    python benchmarks/bench_pretrain.py --store /tmp/s2_20k [--make-store 20000]
measures, on CPU, training samples/s of the `ci` and `small` presets (real
batches, forward + backward + optimiser step, batches prefetched so the
loader is not timed) and data-loader samples/s alone (the `small` batch,
0 and 1 workers), and prints a JSON line per figure.

Fresh pairs (issue 18):
    python benchmarks/bench_pretrain.py --generate paper --generate reference --generate all
measures, per `--generate` preset, the samples/s one generator worker process (one Numba/BLAS
thread) delivers at the `small` batch and window; the `small` training rate on generated
batches (prefetched, the loader not timed); and a real `small` run streaming from one worker
(`--steps` steps, default 40), whose samples/s says whether the loader keeps the trainer fed.

Recorded run (long; with --record):
    python benchmarks/bench_pretrain.py --store /tmp/s2_100k --make-store 100000 \
        --record RUN_DIR [--steps N]
trains the `small` preset on the store, then writes RUN_DIR/curves.png (loss
parts and validation retrieval against steps) and RUN_DIR/summary.json
(final metrics, wall time, samples/s).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from s2gen.pretrain import PretrainConfig
from s2gen.pretrain.data import resolve_max_tokens
from s2gen.pretrain.generated import GeneratorSource, preset_config
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.sources import resolve_symbols
from s2gen.pretrain.stream import make_loader
from s2gen.pretrain.symbols import pretraining_vocabulary
from s2gen.pretrain.train import TrainingStep, param_groups
from s2gen.store import open as open_store


def make_store(path: str, n: int) -> None:
    if Path(path, "zarr.json").exists():
        return
    cmd = [sys.executable, "-m", "s2gen", "generate", "--n", str(n), "--out", path, "--quiet"]
    subprocess.run(cmd, check=True)


def preset_for(store_path: str, name: str, **overrides) -> PretrainConfig:
    store = open_store(store_path)
    window = min(PretrainConfig.preset(name).window, store.config.length // 16 * 16)
    return resolve_max_tokens(store, PretrainConfig.preset(name, window=window, **overrides))[0]


def training_rate(store_path: str, name: str, steps: int) -> dict:
    """Samples/s of full training steps of a preset on a store (loader excluded)."""
    cfg = preset_for(store_path, name, num_workers=0)
    vocabulary = pretraining_vocabulary(open_store(store_path).vocabulary)
    return timed_steps(cfg, store_path, vocabulary, name, steps)


def timed_steps(cfg: PretrainConfig, data, vocabulary: list[str], name: str, steps: int) -> dict:
    """Samples/s of ``steps`` full training steps on prefetched batches of ``data``."""
    torch.manual_seed(0)
    model = Pretrainer(cfg, vocabulary)
    step = TrainingStep(model)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    batches = iter(make_loader(data, cfg))
    warm = 3
    data = [next(batches) for _ in range(steps + warm)]
    for i, batch in enumerate(data):
        if i == warm:
            start = time.perf_counter()
        losses = step(batch, cfg.alpha, generator)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        model.after_step()
    seconds = time.perf_counter() - start
    return {
        "figure": "train_samples_per_s",
        "preset": name,
        "objective": cfg.objective,
        "window": cfg.window,
        "batch_size": cfg.batch_size,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "s_per_step": seconds / steps,
        "samples_per_s": steps * cfg.batch_size / seconds,
    }


def loader_rate(store_path: str, workers: int, batches: int) -> dict:
    """Samples/s the data loader alone delivers (the `small` batch and window)."""
    cfg = preset_for(store_path, "small", num_workers=workers)
    it = iter(make_loader(store_path, cfg))
    next(it)  # start-up (worker processes, first reads) is not timed
    start = time.perf_counter()
    n = sum(len(next(it)["row"]) for _ in range(batches))
    seconds = time.perf_counter() - start
    return {
        "figure": "loader_samples_per_s",
        "workers": workers,
        "batch_size": cfg.batch_size,
        "window": cfg.window,
        "samples_per_s": n / seconds,
    }


def generated(name: str, **overrides) -> tuple[PretrainConfig, GeneratorSource, list[str]]:
    """The `small` config (max_tokens sized), the source and the vocabulary of a preset."""
    cfg = PretrainConfig.preset("small", **overrides)
    source = GeneratorSource(preset_config(name), cfg, name)
    cfg, vocabulary, _ = resolve_symbols([source], cfg)
    return cfg, source, vocabulary


def generator_rate(name: str, batches: int) -> dict:
    """Samples/s one generator worker delivers (the `small` batch and window)."""
    cfg, source, _ = generated(name, num_workers=1)
    it = iter(make_loader([source], cfg))
    next(it)  # start-up (spawn, imports, kernels loaded from the cache) is not timed
    start = time.perf_counter()
    n = sum(len(next(it)["row"]) for _ in range(batches))
    seconds = time.perf_counter() - start
    return {
        "figure": "generator_loader_samples_per_s",
        "generate": name,
        "workers": 1,
        "batch_size": cfg.batch_size,
        "window": cfg.window,
        "samples": n,
        "samples_per_s": n / seconds,
    }


def fed_run(name: str, steps: int, out_dir: str) -> dict:
    """A `small` run streaming ``name`` from one worker: its samples/s after the first log."""
    from s2gen.pretrain import run

    cfg, source, _ = generated(name, num_workers=1, steps=steps, log_every=10)
    cfg = cfg.replace(val_every=steps, ckpt_every=steps, val_samples=256)
    start = time.perf_counter()
    run(cfg, [source], out_dir, device="cpu", progress=False)
    wall = time.perf_counter() - start
    lines = [json.loads(ln) for ln in Path(out_dir, "metrics.jsonl").read_text().splitlines()]
    rates = [m["samples_per_s"] for m in lines if "samples_per_s" in m][1:]
    return {
        "figure": "fed_training_samples_per_s",
        "generate": name,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "samples_per_s": sum(rates) / len(rates),
        "wall_s": wall,
    }


def record(store_path: str, out_dir: str, steps: int | None) -> dict:
    """Train `small` on the store; write curves.png and summary.json into out_dir."""
    from s2gen.pretrain import run

    overrides = {"steps": steps} if steps else {}
    cfg = preset_for(store_path, "small", **overrides)
    start = time.perf_counter()
    final = run(cfg, store_path, out_dir, resume=True, device="auto")
    wall = time.perf_counter() - start
    lines = [json.loads(ln) for ln in Path(out_dir, "metrics.jsonl").read_text().splitlines()]
    plot(lines, Path(out_dir, "curves.png"))
    train = [m for m in lines if "loss" in m]
    summary = {
        "store": store_path,
        "rows": len(open_store(store_path)),
        "config": cfg.to_dict(),
        "wall_s_this_call": wall,
        "mean_samples_per_s": sum(m["samples_per_s"] for m in train) / max(len(train), 1),
        "final": final,
    }
    Path(out_dir, "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def plot(lines: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [m for m in lines if "loss" in m]
    val = [m for m in lines if "val_loss" in m]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [m["step"] for m in train]
    for key in ("loss", "mts", "mlm", "t2s", "s2t", "rec"):
        if key in train[0]:
            axes[0].plot(steps, [m[key] for m in train], label=key, lw=0.8)
    axes[0].set(title="training losses", xlabel="step", yscale="log")
    vsteps = [m["step"] for m in val]
    for key in ("val_loss", "val_mts", "val_mlm", "val_itc", "val_inst", "val_rec"):
        if key in val[0]:
            axes[1].plot(vsteps, [m[key] for m in val], marker="o", label=key)
    axes[1].set(title="validation losses (held-out rows)", xlabel="step")
    for key in ("val_t2s_top1", "val_t2s_top10", "val_s2t_top1", "val_s2t_top10", "val_mlm_acc"):
        axes[2].plot(vsteps, [m[key] for m in val], marker="o", label=key)
    axes[2].axhline(1 / 256, color="grey", ls=":", label="top-1 chance")
    axes[2].axhline(10 / 256, color="grey", ls="--", label="top-10 chance")
    axes[2].set(title="retrieval among 256 held-out pairs", xlabel="step")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", help="A store (its rates, or --record).")
    parser.add_argument(
        "--generate", action="append", default=[], help="Preset of the fresh-pairs figures."
    )
    parser.add_argument("--out", default="/tmp/s2gen-bench-generate", help="--generate runs.")
    parser.add_argument("--make-store", type=int, help="Generate the store first (pairs).")
    parser.add_argument("--threads", type=int, help="torch threads [torch default]")
    parser.add_argument("--steps", type=int, help="Timed steps (rates) or run steps (--record).")
    parser.add_argument("--record", metavar="RUN_DIR", help="Do the recorded `small` run.")
    args = parser.parse_args()
    if args.make_store:
        make_store(args.store, args.make_store)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.generate:
        for name in args.generate:
            fresh(name, args.steps or 40, Path(args.out) / f"{name}-{time.time():.0f}")
        return
    if not args.store:
        parser.error("give --store or --generate")
    if args.record:
        print(json.dumps(record(args.store, args.record, args.steps)["final"]))
        return
    figures = [
        training_rate(args.store, "ci", args.steps or 20),
        training_rate(args.store, "small", args.steps or 8),
        loader_rate(args.store, 0, 100),
        loader_rate(args.store, 1, 100),
    ]
    for figure in figures:
        print(json.dumps(figure))
    small = figures[1]["samples_per_s"]
    best_loader = max(f["samples_per_s"] for f in figures[2:])
    print(json.dumps({"figure": "loader_over_small_training", "ratio": best_loader / small}))


def fresh(name: str, steps: int, out_dir: Path) -> None:
    """The figures of one preset, a JSON line each: loader alone, training, the fed run."""
    loader = generator_rate(name, 100)
    cfg, source, vocabulary = generated(name, num_workers=0)
    training = timed_steps(cfg, [source], vocabulary, "small", 8)
    fed = fed_run(name, steps, str(out_dir))
    for figure in (loader, training, fed):
        print(json.dumps(figure), flush=True)
    ratio = loader["samples_per_s"] / training["samples_per_s"]
    print(json.dumps({"figure": "generator_over_small_training", "generate": name, "ratio": ratio}))


if __name__ == "__main__":
    main()
