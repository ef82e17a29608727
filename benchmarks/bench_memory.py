#!/usr/bin/env python
"""Peak memory of training steps and generation shards, beside s2gen.memory's estimates.

Each measurement runs in a fresh subprocess (one torch thread) so that its
peak RSS (``ru_maxrss``) is its own. For training and embedding the figure
compared with the estimate is the peak minus the RSS after the imports (what
a check made after importing torch must still find available); for
generation it is the whole process's peak.

  pretrain  Pretrainer steps (forward, backward, AdamW) on a synthetic batch
            with full-length expressions, for presets and batch sizes;
  encoder   the series encoder: embedding (no_grad) and a fine-tuning step;
  generate  ``s2gen generate`` of one shard at a long --length.

  python benchmarks/bench_memory.py pretrain encoder generate

Prints one JSON line per measurement (measured and estimated bytes, their
ratio) and, per mode, the ratio's range; ``--fit`` also prints the factor that
would make the largest ratio 1.
"""

import argparse
import json
import subprocess
import sys
import tempfile

PRETRAIN_CHILD = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.symbols import pretraining_vocabulary
from s2gen.pretrain.train import param_groups
from s2gen.symbols.vocabulary import vocabulary

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

preset, overrides = sys.argv[1], json.loads(sys.argv[2])
cfg = PretrainConfig.preset(preset, **overrides)
base = rss()
cfg = cfg.replace(max_tokens=cfg.max_tokens or 96)  # as s2gen.memory assumes unsized
vocab = pretraining_vocabulary(vocabulary())
model = Pretrainer(cfg, vocab)
opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
g = torch.Generator().manual_seed(0)
B, T = cfg.batch_size, cfg.max_tokens
batch = {
    "series": torch.randn(B, cfg.window, generator=g),
    "tokens": torch.randint(model.objectives["s2"].first_regular, len(vocab), (B, T), generator=g),
    "has_symbol": torch.ones(B, dtype=torch.bool),
    "expr_id": torch.arange(B),
}
for step in range(2):
    losses = model.losses(batch, 0.4, g)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"measured": peak - base}))
"""

ENCODER_CHILD = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.encoder import SeriesEncoder

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

preset, overrides = sys.argv[1], json.loads(sys.argv[2])
batch, train = int(sys.argv[3]), sys.argv[4] == "1"
cfg = PretrainConfig.preset(preset, **overrides)
base = rss()
encoder = SeriesEncoder(cfg)
x = torch.randn(batch, cfg.window)
if train:
    head = torch.nn.Linear(cfg.d_model, 2)
    opt = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()))
    for step in range(2):
        loss = head(encoder.forward_features(x)).logsumexp(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
else:
    encoder.eval()
    with torch.no_grad():
        encoder.forward_features(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"measured": peak - base}))
"""

PRETRAIN_GRID = [
    ("ci", {"batch_size": 64}),
    ("ci", {"batch_size": 256}),
    ("ci", {"batch_size": 1024}),
    ("small", {"batch_size": 32}),
    ("small", {"batch_size": 128}),
    ("small", {"batch_size": 512}),
    ("small", {"batch_size": 1024}),
    ("small", {"batch_size": 256, "window": 512}),
    ("small", {"batch_size": 64, "d_model": 256, "d_ff": 1024, "n_layers": 4}),
    ("base", {"batch_size": 16}),
    ("base", {"batch_size": 64}),
]
ENCODER_GRID = [
    ("small", {}, 256, False),
    ("small", {}, 4096, False),
    ("small", {}, 16384, False),
    ("base", {}, 1024, False),
    ("small", {}, 16, True),
    ("small", {}, 256, True),
    ("small", {}, 1024, True),
    ("base", {}, 64, True),
]
GENERATE_GRID = [(65536, 64), (65536, 256), (65536, 1024), (16384, 4096)]


def child(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def pretrain() -> list[dict]:
    from s2gen.memory import pretrain_step_bytes
    from s2gen.pretrain.config import PretrainConfig

    rows = []
    for preset, overrides in PRETRAIN_GRID:
        cfg = PretrainConfig.preset(preset, **overrides)
        measured = child(PRETRAIN_CHILD, preset, json.dumps(overrides))["measured"]
        rows.append(_row("pretrain", preset, overrides, measured, pretrain_step_bytes(cfg)))
    return rows


def encoder() -> list[dict]:
    from s2gen.memory import encoder_bytes
    from s2gen.pretrain.config import PretrainConfig

    rows = []
    for preset, overrides, batch, train in ENCODER_GRID:
        cfg = PretrainConfig.preset(preset, **overrides)
        args = (preset, json.dumps(overrides), str(batch), "1" if train else "0")
        measured = child(ENCODER_CHILD, *args)["measured"]
        what = "finetune" if train else "embed"
        info = {**overrides, "batch": batch}
        rows.append(_row(what, preset, info, measured, encoder_bytes(cfg, batch, train)))
    return rows


PEAK_OF_CHILD = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def generate() -> list[dict]:
    from s2gen.config import GenerateConfig
    from s2gen.memory import generation_bytes

    rows = []
    for length, shard in GENERATE_GRID:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "s2gen", "generate", "--n", str(shard), "--out"]
            cmd += [f"{tmp}/s.zarr", "--length", str(length), "--shard-rows", str(shard)]
            cmd += ["--chunk-rows", str(min(shard, 64)), "--workers", "1", "--quiet"]
            out = subprocess.run(
                [sys.executable, "-c", PEAK_OF_CHILD, *cmd],
                capture_output=True,
                text=True,
                check=True,
            )
        peak = int(out.stdout.strip().splitlines()[-1])
        estimate = generation_bytes(GenerateConfig(length=length), shard, 1)
        info = {"length": length, "shard_rows": shard}
        rows.append(_row("generate", "default", info, peak, estimate))
    return rows


def _row(mode, preset, info, measured, estimate) -> dict:
    row = {
        "mode": mode,
        "preset": preset,
        **info,
        "measured_mb": round(measured / 1e6, 1),
        "estimate_mb": round(estimate / 1e6, 1),
        "ratio": round(estimate / measured, 3),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="+", choices=["pretrain", "encoder", "generate"])
    args = parser.parse_args()
    for mode in args.modes:
        rows = {"pretrain": pretrain, "encoder": encoder, "generate": generate}[mode]()
        ratios = [r["ratio"] for r in rows]
        print(f"{mode}: estimate / measured from {min(ratios)} to {max(ratios)}", flush=True)


if __name__ == "__main__":
    main()
