#!/usr/bin/env python
"""Does OATS help? Six arms x five paired seeds, probed on real data; gate checks first.

The setting OATS is for: synthetic pretraining steered toward a target domain.
The target is the visible classification sets (GunPoint, ArrowHead,
ItalyPowerDemand, BasicMotions): the reference set of TSIS is their TRAIN
splits (never a test split), every series resized to the window as evaluation
resizes it. Pretraining data: a 4,000-row reference-mix store of 128-point
series (the `ci` window, so a plain window recurs every epoch and the score
cache can be read), for about 9 epochs; the `ci` preset.

Arms (each differs from the one before it in one thing, except the last two):

  baseline       no hook;
  augment        a random half of each batch kept, each kept row gives one new row
                 by jitter + mixup (``s2gen.pretrain.augmentation``), which
                 replaces one of the other rows;
  unguided       the same, the new rows drawn unguided from the diffusion generator
                 (in the kept rows' scales);
  random-guides  the same, generation guided by the kept rows;
  oats-replace   OATS as in the paper: TSIS keeps the top half (SNR gate), guided rows
                 replace the bottom half;
  oats-add       TSIS-kept rows guide new rows that are added to the whole real batch
                 (weight 0.5 in the masked-series loss).

Every arm starts at the end of the warm-up; seed s of every arm has the same
initialisation and data order. Metrics: linear-probe accuracy of the frozen
encoder on the four visible sets (``bench_transfer.probe``), held-out
``val_mts`` (the store's validation split), and the wall time of a run.
Runs are cells of the resumable transfer driver: one JSON record per finished
run in ``--records``, a rerun skips them and resumes a killed run exactly.

    python benchmarks/bench_oats.py --gates          # gate checks (minutes): before any arm
    python benchmarks/bench_oats.py                  # the grid (a working session of CPU)
    python benchmarks/bench_oats.py --table          # arms: mean and 95 % interval, paired
    python benchmarks/bench_oats.py --smoke --records /tmp/oats-smoke.jsonl   # the driver
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import (  # noqa: E402
    CLASSIFICATION,
    ROOT,
    _commit,
    ensure_store,
    read_records,
    run_cell,
    run_dir,
    settings_hash,
)

STORE = "ref-4e3-128"  # bench_transfer.STORES: 4,000 reference-mix rows of 128 points
FAMILIES = ("mixture", "arma", "kernel_synth", "trend_season", "imf")
FAMILY_ROWS = 256  # rows of each one-family store of the gate checks
REFERENCE = CLASSIFICATION  # their TRAIN splits (s2gen.oats.reference)
PRESET = "ci"  # window 128, batch 64
VAL_PERMILLE = 50  # 200 validation rows (val_mts); the default 10 would leave 34
STEPS = 528  # 9 epochs of the store's 3,754 training windows at batch 64 (``epochs``)
SEEDS = (0, 1, 2, 3, 4)
# `s2gen oats train-generator`: a quarter of the training rows (never validation rows)
GENERATOR = {"subset": 0.25, "steps": 2000, "seed": 0, "val_permille": VAL_PERMILLE}
HOOK = {"explore_prob": 0.3, "reference_size": 512}  # the whole reference set (393 series)
ARMS = {
    "baseline": None,
    "augment": {"selection": "random", "synthesis": "augment"},
    "unguided": {"selection": "random", "synthesis": "unguided"},
    "random-guides": {"selection": "random", "synthesis": "guided"},
    "oats-replace": {"selection": "tsis", "synthesis": "guided", "mix": "replace"},
    "oats-add": {"selection": "tsis", "synthesis": "guided", "mix": "add"},
}
# paired contrasts of the table beside "arm - baseline": what each step of the ladder adds
CONTRASTS = (
    ("unguided", "augment"),
    ("random-guides", "unguided"),
    ("oats-replace", "random-guides"),
    ("oats-add", "oats-replace"),
)
METRICS = ("mean_accuracy", *CLASSIFICATION, "val_mts", "train_wall_s")
SMOKE = {"steps": 8, "seeds": (0,), "generator_steps": 20}


def oats_cells(smoke: bool = False) -> list[dict]:
    """The grid: one cell per (arm, seed), each a single pretraining run at the ``ci`` preset."""
    steps = SMOKE["steps"] if smoke else STEPS
    seeds = SMOKE["seeds"] if smoke else SEEDS
    generator = {**GENERATOR, "steps": SMOKE["generator_steps"]} if smoke else GENERATOR
    cells = []
    for seed in seeds:
        for arm, settings in ARMS.items():
            oats = None
            if settings is not None:
                oats = {"arm": arm, "ref": list(REFERENCE), **HOOK, **settings}
                if settings["synthesis"] != "augment":
                    oats["generator"] = generator
            name = f"{'smoke:' if smoke else ''}oats:{arm}:seed{seed}"
            spec = {"name": name, "store": STORE, "steps": steps, "seeds": [seed]}
            settings = {"val_permille": VAL_PERMILLE}
            cells.append({**spec, "settings": settings, "preset": PRESET, "oats": oats})
    return cells


def ensure_generator(work: Path, store: str, settings: dict) -> Path:
    """Train the store's generator once (``s2gen oats train-generator``); its checkpoint path.

    The CLI's summary line and the wall time are kept beside it (``.json``).
    """
    from s2gen.pretrain import PretrainConfig

    window = PretrainConfig.preset(PRESET).window
    tag = settings_hash({"store": store, "steps": 0, "seeds": [], "settings": settings})
    path = work / "generators" / f"{Path(store).name}-w{window}-{tag}.pt"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "s2gen", "oats", "train-generator", "--data", store]
    command += ["--out", str(path), "--window", str(window)]
    command += ["--subset", str(settings["subset"]), "--steps", str(settings["steps"])]
    command += ["--seed", str(settings["seed"]), "--val-permille", str(settings["val_permille"])]
    started = time.time()
    done = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    info = {"command": command[1:], "summary": done.stdout.strip(), "wall_s": time.time() - started}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))
    return path


def hook_factory(work: Path, spec: dict):
    """``make_hook(cfg, data)`` of a cell for ``bench_transfer.run_cell`` (None: baseline)."""
    oats = spec["oats"]
    if oats is None:
        return None

    def make_hook(cfg, data):
        from s2gen.oats.wiring import oats_hook_from_options

        settings = {k: v for k, v in oats.items() if k not in ("arm", "ref", "generator")}
        generator = None
        if "generator" in oats:
            generator = str(ensure_generator(work, data[0], oats["generator"]))
        return oats_hook_from_options(cfg, data[0], generator, ref=oats["ref"], **settings)

    return make_hook


def train_samples(store: str, val_permille: int) -> int:
    """Training windows per epoch of a store for the ``s2`` objective: its train rows' outputs."""
    from s2gen.pretrain.data import SPLITS, split_of
    from s2gen.store import open as open_store

    handle = open_store(store)
    arrays = handle.read(0, len(handle), ("n_out", "seed"))
    train = split_of(arrays["seed"], val_permille) == SPLITS.index("train")
    return int(arrays["n_out"][train].sum())


def hook_stats(path: Path) -> dict:
    """Means over the logged steps of the hook's metrics (``oats_*``) of one run."""
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    keys = sorted({k for line in lines for k in line if k.startswith("oats_")})
    return {k: float(np.mean([line[k] for line in lines if k in line])) for k in keys}


def run_oats_cell(work: Path, spec: dict, threads: int) -> dict:
    """Pretrain and probe one (arm, seed) cell; its record (``bench_transfer`` fields + ours).

    The store and the generator are made first, so that a run's wall time is its own.
    """
    store = ensure_store(work, STORE)
    if spec["oats"] is not None and "generator" in spec["oats"]:
        ensure_generator(work, store, spec["oats"]["generator"])
    record = run_cell(work, spec, threads, hook_factory(work, spec), tasks=("classification",))
    seed = spec["seeds"][0]
    batch = 64
    record.update(
        arm=spec["name"].split(":")[-2],
        seed=seed,
        epochs=spec["steps"] * batch / train_samples(store, spec["settings"]["val_permille"]),
        hook=hook_stats(run_dir(work, spec, seed)),
        **{k: record["pretraining"][0].get(k) for k in ("val_mts", "train_wall_s")},
    )
    return record


# ---------------------------------------------------------------------------------------------
# paired statistics


def t_interval(values) -> tuple[float, float]:
    """Mean and half-width of the two-sided 95 % Student-t interval (nan half-width for n < 2)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), float("nan")
    half = t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(half)


def paired_differences(records: list[dict], metric: str, arm: str, other: str) -> list[float]:
    """metric(arm) - metric(other) for every seed both arms have, in seed order."""
    by = {(r["arm"], r["seed"]): r for r in records}
    seeds = sorted({s for a, s in by if a == arm} & {s for a, s in by if a == other})
    return [value(by[(arm, s)], metric) - value(by[(other, s)], metric) for s in seeds]


def value(record: dict, metric: str) -> float:
    """A metric of a record: a probe accuracy, the mean accuracy, val_mts or the train wall time."""
    if metric in record.get("metrics", {}):
        return float(record["metrics"][metric])
    return float(record[metric])


def table(records: list[dict]) -> str:
    """Markdown: per arm mean +- 95 % half-width over seeds; then paired differences."""
    arms = [a for a in ARMS if any(r["arm"] == a for r in records)]
    names = {"mean_accuracy": "mean acc", "train_wall_s": "train s", "val_mts": "val_mts"}
    head = [names.get(m, m) for m in METRICS]
    lines = [
        "| arm | n | " + " | ".join(head) + " | cost x |",
        "|---|---:|" + "---:|" * (len(head) + 1),
    ]
    base_wall = [value(r, "train_wall_s") for r in records if r["arm"] == "baseline"]
    for arm in arms:
        recs = [r for r in records if r["arm"] == arm]
        cells = []
        for m in METRICS:
            mean, half = t_interval([value(r, m) for r in recs])
            digits = 0 if m == "train_wall_s" else 4
            cells.append(f"{mean:.{digits}f}" + ("" if np.isnan(half) else f" ± {half:.{digits}f}"))
        wall = np.mean([value(r, "train_wall_s") for r in recs])
        cost = f"{wall / np.mean(base_wall):.1f}" if base_wall else ""
        lines.append(f"| {arm} | {len(recs)} | " + " | ".join(cells) + f" | {cost} |")
    pairs = [(a, "baseline") for a in arms if a != "baseline"] + [
        (a, b) for a, b in CONTRASTS if a in arms and b in arms
    ]
    for arm, other in pairs:
        cells, n = [], 0
        for m in METRICS:
            diffs = paired_differences(records, m, arm, other)
            n = len(diffs)
            mean, half = t_interval(diffs)
            digits = 0 if m == "train_wall_s" else 4
            text = f"{mean:+.{digits}f}" + ("" if np.isnan(half) else f" ± {half:.{digits}f}")
            significant = not np.isnan(half) and abs(mean) > half
            cells.append(f"**{text}**" if significant and m != "train_wall_s" else text)
        lines.append(f"| {arm} − {other} (paired) | {n} | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# gate checks


def auroc(positive, negative) -> float:
    """P(score of a positive > score of a negative), ties counted one half (-inf ties too)."""
    p = np.asarray(positive, np.float64)[:, None]
    n = np.asarray(negative, np.float64)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def matched_noise(windows: np.ndarray, seed: int) -> np.ndarray:
    """White noise (n, L) with each row's mean and standard deviation taken from ``windows``."""
    noise = np.random.default_rng(seed).standard_normal(windows.shape)
    noise = (noise - noise.mean(1, keepdims=True)) / noise.std(1, keepdims=True)
    return (noise * windows.std(1, keepdims=True) + windows.mean(1, keepdims=True)).astype(
        np.float32
    )


def model_states(work: Path, store: str, threads: int, steps: int) -> dict:
    """The ``ci`` model at initialisation and after ``steps`` baseline steps (seed 0)."""
    import torch

    from s2gen.pretrain import PretrainConfig, run
    from s2gen.pretrain.checkpoint import config_of, load
    from s2gen.pretrain.model import Pretrainer

    torch.set_num_threads(threads)
    out = work / "gates" / f"baseline-{steps}"
    if not (out / "last.pt").exists():
        cfg = PretrainConfig.preset(
            PRESET,
            steps=steps,
            seed=0,
            val_every=steps,
            ckpt_every=steps,
            val_permille=VAL_PERMILLE,
        )
        run(cfg, store, str(out), resume=True, device="cpu", progress=False)
    state = load(out / "last.pt")
    cfg = config_of(state)
    torch.manual_seed(cfg.seed)  # as run() initialises
    init = Pretrainer(cfg, state["vocabulary"])
    trained = Pretrainer(cfg, state["vocabulary"])
    trained.load_state_dict(state["model"])
    return {"init": (cfg, init.eval()), f"{steps} steps": (cfg, trained.eval())}


def scores(hook, model, windows: np.ndarray, salt: int) -> np.ndarray:
    """Raw alignments (n,) of ``windows`` (n, L) with the hook's reference gradient."""
    import torch

    keys = salt * 1_000_000 + np.arange(len(windows))
    return hook.score(model, {"series": torch.as_tensor(windows)}, keys, step=0)


def gate_checks(work: Path, threads: int, smoke: bool) -> dict:
    """TSIS AUROC against white noise by family, and MMD to the reference set (see BENCHMARKS)."""
    import torch

    from s2gen.oats.data import load_series, store_subset
    from s2gen.oats.generator import Generator, unzscore, zscore
    from s2gen.oats.metrics import feature_mmd
    from s2gen.oats.reference import reference_series
    from s2gen.oats.snr import snr_db, snr_gate
    from s2gen.oats.wiring import oats_hook_from_options
    from s2gen.pretrain.augmentation import augment_batch
    from s2gen.store import open as open_store

    torch.set_num_threads(threads)
    started = time.time()
    store = ensure_store(work, STORE)
    generator_settings = {**GENERATOR, "steps": SMOKE["generator_steps"]} if smoke else GENERATOR
    gen_path = ensure_generator(work, store, generator_settings)
    window = 128
    reference = reference_series(list(REFERENCE), window, 10**6)
    ref_a, ref_b = reference[0::2], reference[1::2]  # TSIS reference / held-out target windows
    (work / "gates").mkdir(parents=True, exist_ok=True)
    ref_path = work / "gates" / "reference-a.npy"
    np.save(ref_path, ref_a)
    candidates = {}
    for family in FAMILIES:
        options = ["--n", str(FAMILY_ROWS), "--samplers", f"{family}=1", "--length", str(window)]
        path = ensure_store(work, f"{family}-{FAMILY_ROWS}-{window}", options + ["--seed", "0"])
        candidates[family] = load_series(path)[:128]
    train, _ = store_subset(open_store(store), 0.2, seed=1, val_permille=VAL_PERMILLE)
    candidates["reference mix (the store)"] = train[:128]
    candidates["target (held-out half)"] = ref_b[:128]

    out = {"reference_a": len(ref_a), "reference_b": len(ref_b), "auroc": {}, "mmd": {}}
    states = model_states(work, store, threads, SMOKE["steps"] if smoke else STEPS // 3)
    trained_hook, trained_model = None, None
    for state, (cfg, model) in states.items():
        hooks = {
            sim: oats_hook_from_options(
                cfg, store, str(gen_path), ref=[str(ref_path)], similarity=sim, after=0
            )
            for sim in ("dot", "cosine")
        }
        for salt, (name, windows) in enumerate(candidates.items()):
            noise = matched_noise(windows, seed=salt)
            both = np.concatenate([windows, noise])
            n = len(windows)
            dot, cos = (scores(hooks[s], model, both, salt) for s in ("dot", "cosine"))
            snr = snr_db(both)
            gated = np.zeros(len(both), bool)
            shuffled = np.random.default_rng(salt).permutation(len(both))
            for start in range(0, len(both), 64):  # the default relative gate, per batch of 64
                part = shuffled[start : start + 64]
                gated[part] = snr_gate(snr[part], quantile=hooks["dot"].cfg.snr_quantile)
            tsis = np.where(gated, -np.inf, dot)
            out["auroc"].setdefault(name, {})[state] = {
                "tsis_dot": auroc(dot[:n], dot[n:]),
                "tsis_cosine": auroc(cos[:n], cos[n:]),
                "tsis_dot_gated": auroc(tsis[:n], tsis[n:]),
                "snr_alone": auroc(snr[:n], snr[n:]),
                "n": n,
            }
        trained_hook, trained_model = hooks["dot"], model

    # MMD to the reference set (half A): what each arm's new rows look like
    generator = Generator.load(gen_path)
    rng = np.random.default_rng(2)
    pool, _ = store_subset(open_store(store), 0.3, seed=2, val_permille=VAL_PERMILLE)
    pool = pool[rng.permutation(len(pool))[:512]]
    randoms = pool[:256]
    aligned = scores(trained_hook, trained_model, pool, 99)
    gated = np.zeros(len(pool), bool)
    for start in range(0, len(pool), 64):
        gated[start : start + 64] = snr_gate(snr_db(pool[start : start + 64]), quantile=0.25)
    top = pool[np.argsort(-np.where(gated, -np.inf, aligned), kind="stable")[:256]]
    sample = dict(seed=3, ddim_steps=20, guidance_scale=1.0)
    _, loc, scale = zscore(randoms)
    sets = {
        "target, held-out half (the floor)": ref_b,
        "store windows, random": randoms,
        "store windows, TSIS top half": top,
        "jitter + mixup of random store windows": augment_batch(randoms, rng),
        "unguided generation": unzscore(generator.sample(None, n=256, **sample), loc, scale),
        "guided by random store windows": generator.sample(randoms, **sample),
        "guided by TSIS-top store windows": generator.sample(top, **sample),
        "guided by held-out target windows": generator.sample(ref_b, **sample),
    }
    for name, windows in sets.items():
        out["mmd"][name] = {"mmd": feature_mmd(np.asarray(windows), ref_a), "n": len(windows)}
    out.update(wall_s=time.time() - started, commit=_commit(), smoke=smoke, generator=str(gen_path))
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return out


def gate_table(gates: dict) -> str:
    """Markdown tables of the gate checks."""
    states = list(next(iter(gates["auroc"].values())))
    lines = [
        "| windows vs white noise | "
        + " | ".join(f"{s}: TSIS dot | cosine | dot, gated" for s in states)
        + " | SNR alone |",
        "|---|" + "---:|" * (3 * len(states) + 1),
    ]
    for name, by_state in gates["auroc"].items():
        cells = [
            f"{by_state[s][k]:.3f}"
            for s in states
            for k in ("tsis_dot", "tsis_cosine", "tsis_dot_gated")
        ]
        cells.append(f"{by_state[states[0]]['snr_alone']:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| set vs the reference set (half A) | n | MMD |", "|---|---:|---:|"]
    for name, entry in gates["mmd"].items():
        lines.append(f"| {name} | {entry['n']} | {entry['mmd']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", default=str(ROOT / "benchmarks/logs/oats.jsonl"))
    parser.add_argument("--gates-out", default=str(ROOT / "benchmarks/logs/oats_gates.json"))
    parser.add_argument("--work", default=os.environ.get("S2GEN_WORK", "/tmp/s2gen-oats"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--only", action="append", default=[], help="arms to run (repeatable)")
    parser.add_argument("--gates", action="store_true", help="run and print the gate checks")
    parser.add_argument("--list", action="store_true", help="list cells and whether recorded")
    parser.add_argument("--table", action="store_true", help="print the arms' markdown table")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 8 steps, tiny generator")
    args = parser.parse_args()
    work = Path(args.work)
    if args.gates:
        gates = gate_checks(work, args.threads, args.smoke)
        Path(args.gates_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.gates_out).write_text(json.dumps(gates, indent=1))
        print(gate_table(gates))
        return
    records_path = Path(args.records)
    records = read_records(records_path)
    if args.table:
        print(table(records))
        return
    done = {r["hash"] for r in records}
    cells = [
        c for c in oats_cells(args.smoke) if not args.only or c["name"].split(":")[-2] in args.only
    ]
    for spec in cells:
        key = settings_hash(spec)
        if args.list:
            print(f"{spec['name']:<34} {'recorded' if key in done else 'to run'}")
            continue
        if key in done:
            print(f"skip {spec['name']} (recorded)", flush=True)
            continue
        print(f"run {spec['name']}", flush=True)
        record = run_oats_cell(work, spec, args.threads)
        records_path.parent.mkdir(parents=True, exist_ok=True)
        with records_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        done.add(key)
        shown = ("cell", "mean_accuracy", "val_mts", "train_wall_s", "wall_s")
        print(json.dumps({k: record[k] for k in shown}), flush=True)


if __name__ == "__main__":
    main()
