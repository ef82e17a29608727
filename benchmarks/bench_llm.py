"""Cost of the gpt2 backbone beside the project's encoder (figures go to BENCHMARKS.md).

    python benchmarks/bench_llm.py cost [--threads 1] [--steps 10]

For each encoder, at the same sequence length (window 256, patch 16: 16 tokens),
in a fresh subprocess: trainable and total parameters, the median time of a
fine-tuning step (forward of a batch of 32, pooled embedding, linear head,
cross-entropy, backward, AdamW) and of an inference batch, and the peak
resident memory the model and a step added (``ru_maxrss`` after the step minus
the RSS after the imports, transformers and peft included for every encoder).
One JSON line per encoder.

    python benchmarks/bench_llm.py momentum [--threads 1]

S2 pretraining with the gpt2 backbone (GPT-2 small's width, 6 blocks): the
resident memory of ``Pretrainer`` (online backbone + momentum copy) when the
copy shares the frozen base (as built) and when it holds its own (plain
deepcopy), and one training step's time.

    python benchmarks/bench_llm.py merged [--threads 1]

Inference with LoRA adapters merged into the base weights vs unmerged.

    python benchmarks/bench_llm.py eval --out benchmarks/evaluation/llm

The visible evaluation sets at a small budget, every encoder randomly
initialised (the gpt2 base too: no GPT-2 weights here): frozen probes
(classification, forecasting H = 12, 3 seeds) of s2 and gpt2 with either front
end and gpt2's two poolings, then short fine-tunes (at most 20 epochs, 2 seeds,
two classification sets and two series) of s2 (full, lr 1e-4) and gpt2 (LoRA,
lr 1e-3). Each run writes results.json/.md/.png; ``--only ft`` runs a subset.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ENCODERS = {
    # the project's encoder, `small` preset sizes
    "s2 small (patch)": dict(backbone="s2"),
    "s2 small (multiscale)": dict(backbone="s2", frontend="multiscale"),
    # a random GPT-2 core of the same width and depth as s2 small: LoRA on a frozen base
    "gpt2 d128 x3 (patch)": dict(backbone="gpt2", llm_layers=3),
    # GPT-2 small's architecture (width 768, 12 heads, MLP 3072), random weights
    "gpt2-small x6 (patch)": dict(
        backbone="gpt2", d_model=768, n_heads=12, d_ff=3072, llm_layers=6
    ),
    "gpt2-small x6 (multiscale)": dict(
        backbone="gpt2", d_model=768, n_heads=12, d_ff=3072, llm_layers=6, frontend="multiscale"
    ),
    "gpt2-small x12 (patch)": dict(
        backbone="gpt2", d_model=768, n_heads=12, d_ff=3072, llm_layers=12
    ),
}

COST = """
import json, resource, sys, time, statistics
import torch
torch.set_num_threads(int(sys.argv[2]))
from s2gen.pretrain.encoder import random_encoder
from s2gen.evaluate.finetune import EncoderClassifier
import transformers.models.gpt2.modeling_gpt2, peft  # imported before the baseline RSS, for all
overrides, steps = json.loads(sys.argv[1]), int(sys.argv[3])
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
base = rss_mb()
encoder = random_encoder("small", seed=0, window=256, patch=16, **overrides)
model = EncoderClassifier(encoder, 1, 2, torch.Generator().manual_seed(0))
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4)
g = torch.Generator().manual_seed(0)
x, y = torch.randn(32, 1, 256, generator=g), torch.randint(0, 2, (32,), generator=g)
times = []
model.train()
for i in range(steps + 2):
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
model.eval()
infer = []
with torch.no_grad():
    for i in range(steps + 2):
        t = time.perf_counter(); model(x); infer.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
total = sum(p.numel() for p in encoder.parameters())
trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
print(json.dumps({
    "trainable": trainable, "total": total, "tokens": 256 // encoder.patch,
    "step_ms": round(1000 * statistics.median(times[2:]), 1),
    "infer_ms": round(1000 * statistics.median(infer[2:]), 1),
    "peak_mb_over_imports": round(peak - base, 1),
}))
"""

MOMENTUM = """
import json, sys, time, resource
import torch
torch.set_num_threads(int(sys.argv[1]))
from s2gen.pretrain.backbones.gpt2 import GPT2Backbone
if sys.argv[2] == "plain":
    GPT2Backbone.__deepcopy__ = None  # copy.deepcopy then copies every tensor
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.symbols import pretraining_vocabulary
from s2gen.symbols.vocabulary import vocabulary
from s2gen.pretrain.train import param_groups
import transformers.models.gpt2.modeling_gpt2, peft  # before the baseline RSS
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
cfg = PretrainConfig.preset("small", backbone="gpt2", d_model=768, n_heads=12, d_ff=3072,
                            llm_layers=6, max_tokens=64, batch_size=32, queue_size=1024)
base = rss_mb()
torch.manual_seed(0)
model = Pretrainer(cfg, pretraining_vocabulary(vocabulary()))
built = rss_mb() - base
g = torch.Generator().manual_seed(0)
batch = {"series": torch.randn(32, 256, generator=g).cumsum(1),
         "tokens": torch.randint(5, 60, (32, 64), generator=g),
         "has_symbol": torch.ones(32, dtype=torch.bool), "expr_id": torch.arange(32)}
opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4)
times = []
for step in range(4):
    t = time.perf_counter()
    losses = model.losses(batch, 0.4, torch.Generator().manual_seed(step))
    opt.zero_grad(); losses["loss"].backward(); opt.step()
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
online, ema = model.series, model.objectives["s2"].series_m
shared = sum(online.get_parameter(n) is ema.get_parameter(n) for n in online.frozen)
print(json.dumps({"copy": sys.argv[2], "rss_mb_after_build": round(built, 1),
                  "peak_mb_after_4_steps": round(peak, 1), "shared_base_tensors": int(shared),
                  "base_mb": round(sum(online.get_parameter(n).numel() for n in online.frozen)
                                   * 4 / 2**20, 1),
                  "step_s": round(sorted(times[1:])[1], 2)}))
"""

MERGED = """
import json, sys, time, statistics
import torch
torch.set_num_threads(int(sys.argv[1]))
from s2gen.pretrain.encoder import random_encoder
encoder = random_encoder("small", seed=0, window=256, patch=16, backbone="gpt2", d_model=768,
                         n_heads=12, d_ff=3072, llm_layers=6, lora_targets="c_attn,c_proj,c_fc")
with torch.no_grad():
    for name, p in encoder.named_parameters():
        if "lora_B" in name:
            p.normal_(0, 0.02)
x = torch.randn(64, 256)
def timed():
    out = []
    for _ in range(7):
        t = time.perf_counter(); encoder.forward_features(x); out.append(time.perf_counter() - t)
    return round(1000 * statistics.median(out[2:]), 1)
with torch.no_grad():
    plain = encoder.forward_features(x)
    unmerged_ms = timed()
    with encoder.backbone.merged():
        merged = encoder.forward_features(x)
        merged_ms = timed()
print(json.dumps({"unmerged_ms": unmerged_ms, "merged_ms": merged_ms,
                  "max_abs_diff": float((merged - plain).abs().max())}))
"""


CLASSIFICATION = ["GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions"]
FORECASTING = ["airline", "sunspots", "co2", "lynx"]
GPT2_D128 = ["--backbone", "gpt2", "--llm-layers", "3"]
PROBES = {
    "s2-patch": [],
    "s2-multiscale": ["--frontend", "multiscale"],
    "gpt2-patch-mean": GPT2_D128,
    "gpt2-patch-last": [*GPT2_D128, "--llm-pool", "last"],
    "gpt2-multiscale-mean": [*GPT2_D128, "--frontend", "multiscale"],
}
FINETUNES = {"s2-patch": ["--lr", "1e-4"], "gpt2-patch-mean": [*GPT2_D128, "--lr", "1e-3"]}


FT_CLASSIFICATION = ["GunPoint", "ItalyPowerDemand"]
FT_FORECASTING = ["airline", "lynx"]


def evaluation(out: str, threads: int, only: str | None) -> None:
    """The visible-set runs (see the module notes), one CLI call each; ``only``: a name part."""
    runs = {}
    for name, flags in PROBES.items():
        common = ["evaluate", "--random-init", "--preset", "small", "--seeds", "3", *flags]
        runs[f"probe-cls-{name}"] = [*common, "--task", "classification", "--no-baselines"] + [
            f"--dataset={d}" for d in CLASSIFICATION
        ]
        runs[f"probe-fc-{name}"] = [*common, "--task", "forecasting", "--horizon", "12"] + [
            "--no-baselines",
            *[f"--dataset={d}" for d in FORECASTING],
        ]
    for name, flags in FINETUNES.items():
        common = ["finetune", "--random-init", "--preset", "small", "--seeds", "2"]
        common += ["--epochs", "20", *flags]
        runs[f"ft-cls-{name}"] = common + [f"--dataset={d}" for d in FT_CLASSIFICATION]
        runs[f"ft-fc-{name}"] = [*common, "--task", "forecasting", "--horizon", "12"] + [
            f"--dataset={d}" for d in FT_FORECASTING
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for name, args in runs.items():
        if only and only not in name:
            continue
        start = time.time()
        command = [sys.executable, "-m", "s2gen", *args, "--out", f"{out}/{name}"]
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        print(json.dumps({"run": name, "wall_s": round(time.time() - start, 1)}), flush=True)


def _run(code: str, *args) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("cost", "momentum", "merged", "eval"))
    parser.add_argument("--out", default="benchmarks/evaluation/llm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", default=None, help="substring of the encoder/run names to run")
    args = parser.parse_args()
    start = time.time()
    if args.what == "cost":
        for name, overrides in ENCODERS.items():
            if args.only and args.only not in name:
                continue
            result = _run(COST, json.dumps(overrides), args.threads, args.steps)
            print(json.dumps({"encoder": name, **result}), flush=True)
    elif args.what == "eval":
        evaluation(args.out, args.threads, args.only)
    elif args.what == "momentum":
        for copy in ("shared", "plain"):
            print(json.dumps(_run(MOMENTUM, args.threads, copy)), flush=True)
    else:
        print(json.dumps(_run(MERGED, args.threads)), flush=True)
    load = open("/proc/loadavg").read().split()[:3]
    print(
        json.dumps(
            {
                "wall_s": round(time.time() - start, 1),
                "loadavg": load,
                "maxrss_parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
