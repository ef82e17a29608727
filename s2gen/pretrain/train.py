"""The pretraining loop: a plain function, ``run(cfg, data, out_dir)``.

One step = one batch per process: optional ``batch_hook`` (OATS replaces rows
there), losses under bf16 autocast on CUDA, a finiteness check, backward,
gradient clipping, AdamW with a warm-up + cosine learning rate that is a
function of the step, and the objectives' upkeep (temperature clamp). Rank 0
logs JSONL metrics (and TensorBoard when it is installed), validates every
``val_every`` steps and writes ``last.pt`` (every ``ckpt_every`` steps and at
the end) and ``best.pt`` (best validation loss; no test data is ever looked
at), and at the start ``config.json`` (the effective settings) and ``run.json``
(data sources, world size, share of expressions longer than ``max_tokens``; for a
``--generate`` run the generation config and, per rank, the first and last row
trained on, updated at every checkpoint). Under
``torchrun`` the step runs in DistributedDataParallel (gloo on CPU, nccl on
GPU) and the queues are fed from all ranks.

Resume continues exactly (same losses, weights, optimiser and queues as an
uninterrupted run) at any step, on the same number of processes; a changed
world size is refused. Raising ``steps`` on resume is allowed: the schedule
is a function of (step, steps), so the warm-up and cosine are recomputed for
the new length and the learning rate jumps to the new curve at the resume step.
"""

import inspect
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from s2gen.pretrain import checkpoint
from s2gen.pretrain.config import GENERATE_PRESETS, PretrainConfig
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.sources import open_sources, resolve_symbols
from s2gen.pretrain.stream import held_out_set, make_loader

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
# settings that may change on --resume without breaking the run's identity (a gpt2 base
# folder may move: its hash is checked when the weights are loaded)
RESUMABLE_CHANGES = ("steps", "val_every", "ckpt_every", "log_every", "backbone_weights")
CONFIG = "config.json"
BatchHook = Callable[[dict, int, Pretrainer], dict]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine to ``min_lr``."""
    warmup = int(cfg.warmup * cfg.steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def alpha_at(step: int, cfg: PretrainConfig) -> float:
    """Distillation weight: ramps linearly from 0 to ``alpha`` over ``alpha_ramp`` of the steps."""
    ramp = cfg.alpha_ramp * cfg.steps
    return cfg.alpha if ramp <= 0 else cfg.alpha * min(1.0, step / ramp)


def step_seed(seed: int, stream: int, rank: int, step: int) -> int:
    """Seed of one random stream (0 masks, 1 dropout) of one rank at one step.

    Every step's randomness is a pure function of (seed, rank, step), so a
    resume (on any number of ranks) continues exactly, with no state to restore.
    """
    mixed = ((seed * 1_000_003 + stream) * 1_000_033 + rank) * 1_000_000_007 + step
    return mixed % (1 << 63)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on the weights of linear and convolution layers only.

    Biases, norms, token embeddings (``tok``, tied to the MLM decoder), positions,
    [CLS], mask tokens and the temperature are never decayed.
    """
    decayed = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv1d)) and m.weight.requires_grad
    }
    decay = [p for p in model.parameters() if p.requires_grad and id(p) in decayed]
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in decayed]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


class TrainingStep(nn.Module):
    """The training step's forward (what DDP wraps): batch -> dict of losses."""

    def __init__(self, model: Pretrainer) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, alpha: float, generator: torch.Generator):
        return self.model.losses(batch, alpha, generator)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r} is unknown; choose auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no GPU; use --device cpu or auto")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def _init_distributed(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), True


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (and TensorBoard when installed).

    ``sinks`` receive the same lines: ``sink.start(config, resume)`` once (the
    effective config dict), then ``sink.write(step, values)`` (e.g. ``s2gen.tracking.Tracker``).
    """

    def __init__(
        self, out_dir: Path, keep_until: int | None, sinks=(), config: dict | None = None
    ) -> None:
        self.path = out_dir / METRICS
        self.sinks = tuple(sinks)
        for sink in self.sinks:
            sink.start(config or {}, resume=keep_until is not None)
        if keep_until is None:
            self.path.write_text("")
        else:  # a resume drops what was logged after the checkpoint
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            kept = [ln for ln in lines if ln and json.loads(ln)["step"] <= keep_until]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.tb = None
        else:
            self.tb = SummaryWriter(str(out_dir / "tb"))

    def write(self, step: int, values: dict[str, float]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
        for sink in self.sinks:
            sink.write(step, values)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _old_default_hint(trained: dict | None, generate: dict | None) -> str:
    """How to resume a run that streamed the paper's mix (s2gen 0.1's default) from a
    generation config file that does not name its mix."""
    if not (trained and generate) or generate["name"] in GENERATE_PRESETS:
        return ""
    trained_mix = trained["config"]["sampler_weights"]
    if trained_mix or trained["config"].get("graph") or not generate["config"]["sampler_weights"]:
        return ""
    return "; it drew the paper's mix, s2gen 0.1's default: add sampler_weights = {} to the file"


def _check_resume(
    saved: PretrainConfig,
    cfg: PretrainConfig,
    state: dict,
    world: int,
    generate: dict | None = None,
) -> None:
    trained = state.get("generate")

    def same_pairs(record):  # the name is the --generate argument as typed: a path may differ
        return None if record is None else {k: v for k, v in record.items() if k != "name"}

    if same_pairs(trained) != same_pairs(generate):

        def data(record):
            return f"--generate {record['name']}" if record else "--data"

        raise ValueError(
            f"the run was trained on {data(trained)} and is resumed with {data(generate)} of "
            "another generation config, which gives other pairs; resume with the run's data "
            f"(run.json){_old_default_hint(trained, generate)}"
        )
    saved_world = int(state.get("world_size", 1))
    if saved_world != world:
        raise ValueError(
            f"the run was trained on {saved_world} process(es) and is resumed on {world}: the "
            f"data order depends on the world size; resume with {saved_world} process(es)"
        )
    if cfg.max_tokens == 0:  # sized from the store at the start of the run
        cfg = cfg.replace(max_tokens=saved.max_tokens)
    current = cfg.to_dict()
    changed = [
        f"{k}: {v!r} -> {current[k]!r}"
        for k, v in saved.to_dict().items()
        if current[k] != v and k not in RESUMABLE_CHANGES
    ]
    if changed:
        raise ValueError(
            "cannot resume with a different configuration ("
            + "; ".join(changed)
            + "); resume with the saved settings or start a new --out directory"
        )


def _to_device(batch: dict[str, torch.Tensor], device: torch.device):
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class RowSpan:
    """First and last row (of a generated source) that one rank trained on.

    ``spans`` hands every rank's [first, last] (None before any batch) to rank 0
    through the process group's key-value store: no tensor collective (with
    pickling) right before a rank may leave. A rank once aborted at exit after
    such a gather ("terminate called without an active exception"): DDP keeps the
    group, and so its gloo threads, alive past ``destroy_process_group``, and a
    gloo thread that still holds a tensor made in Python when the interpreter
    shuts down needs the GIL (the suspected cause). ``run`` ends with a barrier
    for the same reason.
    """

    def __init__(self, saved: list | None, rank: int) -> None:
        self.rank = rank
        self.first, self.last = saved[rank] if saved else (None, None)

    def update(self, rows: torch.Tensor) -> None:
        low, high = int(rows.min()), int(rows.max())
        self.first = low if self.first is None else min(self.first, low)
        self.last = high if self.last is None else max(self.last, high)

    def spans(self, world: int, step: int) -> list | None:
        """Every rank's span on rank 0, None on the others; every rank calls it at ``step``."""
        if world == 1:
            return [[self.first, self.last]]
        store = dist.distributed_c10d._get_default_store()
        keys = [f"s2gen/rows/{step}/{rank}" for rank in range(world)]
        store.set(keys[self.rank], json.dumps([self.first, self.last]))
        if self.rank != 0:
            return None
        spans = [json.loads(store.get(key)) for key in keys]  # get waits for the key
        for key in keys:
            store.delete_key(key)
        return spans


def run(
    cfg: PretrainConfig,
    data,
    out_dir: str,
    resume: bool = False,
    device: str = "auto",
    batch_hook: BatchHook | None = None,
    progress: bool = True,
    sinks=(),
) -> dict[str, float]:
    """Pretrain a series encoder (and the objectives' heads) on data; returns the final metrics.

    Parameters
    ----------
    cfg : the run's settings (``PretrainConfig.preset``).
    data : a path or a list of paths (``--data``): s2gen stores and real unlabeled
        series (``s2gen.pretrain.sources``); their "train" samples are used, "val"
        for validation. An objective that reads symbols needs a store.
    out_dir : run directory: ``metrics.jsonl``, ``last.pt``, ``best.pt``.
    resume : continue from ``out_dir/last.pt`` (losses continue exactly as an
        uninterrupted run); without it an existing run there is an error.
    device : "auto", "cpu" or "cuda".
    batch_hook : ``hook(batch, step, model) -> batch`` applied to every training
        batch before the loss; a ``metrics`` dict of floats in the returned
        batch is logged with the step. A hook with ``state_dict()`` /
        ``load_state_dict()`` has its state saved in checkpoints and restored
        on resume.
    progress : show a tqdm bar (rank 0).
    sinks : on rank 0, receivers of the logged metrics besides ``metrics.jsonl``
        (``MetricsLog``), e.g. an MLflow ``s2gen.tracking.Tracker``.

    Returns
    -------
    The last logged training metrics and the last validation metrics.
    """
    dev = resolve_device(device)
    rank, world, own_group = _init_distributed(dev)
    out = Path(out_dir)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            final = _run(cfg, data, out, resume, dev, rank, world, batch_hook, progress, sinks)
        if world > 1:  # ranks return together, once rank 0 has written the run's files
            dist.barrier(device_ids=[dev.index] if dev.type == "cuda" else None)
        return final
    finally:
        if own_group:
            dist.destroy_process_group()


def _run(cfg, data, out, resume, dev, rank, world, batch_hook, progress, sinks):
    from tqdm import tqdm

    sources = open_sources(data, cfg)
    fresh = [s for s in sources if s.endless]  # a generator (streams alone)
    generate = fresh[0].record() if fresh else None
    last = out / checkpoint.LAST
    if last.exists() and not resume:
        raise ValueError(f"{out} already holds a run; pass resume=True (--resume) or another --out")
    out.mkdir(parents=True, exist_ok=True)
    state = checkpoint.load(last) if resume and last.exists() else None
    if state is not None:
        saved = checkpoint.config_of(state)
        _check_resume(saved, cfg, state, world, generate)
        cfg = cfg.replace(max_tokens=saved.max_tokens)
    elif resume:
        log.info("no %s to resume from; starting a new run", last)
    cfg, vocabulary, truncated = resolve_symbols(sources, cfg)
    if cfg.needs_symbols:
        log.info("max_tokens %d: %.2f%% of expressions are cut", cfg.max_tokens, 100 * truncated)

    torch.manual_seed(cfg.seed)  # model init (inside run's fork_rng: the caller's RNG is kept)
    model = Pretrainer(cfg, vocabulary).to(dev)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    generator = torch.Generator()  # masks; reseeded every step, as is dropout's global RNG
    step, best = 0, math.inf
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = int(state["step"]), float(state["best_val_loss"])
        if "hook" in state and hasattr(batch_hook, "load_state_dict"):
            batch_hook.load_state_dict(state["hook"])
        log.info("resuming %s at step %d", out, step)

    forward: nn.Module = TrainingStep(model)
    if world > 1:
        ids = [dev.index] if dev.type == "cuda" else None
        # queues stay in step by all-gather; buffers need no sync per forward
        sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False}  # torch < 2.13
        )
        # terms of weight 0 leave their heads without gradients
        forward = DistributedDataParallel(
            forward, device_ids=ids, find_unused_parameters=True, **sync
        )
    batches = iter(make_loader(sources, cfg, rank, world, start_batch=step))
    lead = rank == 0
    val_batch = held_out_set(sources, cfg) if lead and cfg.val_samples else None
    metrics = None
    if lead:
        keep = step if state is not None else None
        metrics = MetricsLog(out, keep_until=keep, sinks=sinks, config=cfg.to_dict())
    span = RowSpan(state.get("rows") if state else None, rank) if fresh else None
    settings = {
        "data": [s.name for s in sources],
        "world_size": world,
        "symbols_truncated": truncated,
    }
    if fresh:
        settings["generate"] = generate
        settings["rows"] = _rows_record(state.get("rows") if state else [[None, None]] * world)
    if lead:
        _write_settings(out, cfg, settings)
    amp = cfg.amp and dev.type == "cuda"  # bf16 autocast
    bar = tqdm(total=cfg.steps, initial=step, disable=not (lead and progress), unit="step")
    final: dict[str, float] = {}
    tick, tick_step = time.perf_counter(), step
    started = tick - (float(state.get("train_s", 0.0)) if state is not None else 0.0)
    try:
        while step < cfg.steps:
            batch = next(batches)
            if span is not None:
                span.update(batch["row"])
            batch = _to_device(batch, dev)
            extra: dict[str, float] = {}
            if batch_hook is not None:
                batch = batch_hook(batch, step, model)
                extra = {k: float(v) for k, v in batch.pop("metrics", {}).items()}
            generator.manual_seed(step_seed(cfg.seed, 0, rank, step))
            torch.manual_seed(step_seed(cfg.seed, 1, rank, step))
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                losses = forward(batch, alpha_at(step, cfg), generator)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            )
            if not (torch.isfinite(losses["loss"]) and torch.isfinite(norm)):
                raise FloatingPointError(  # before the step: the weights stay finite
                    f"non-finite loss or gradient at step {step}: "
                    + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                    + f", grad_norm={float(norm):.4g}; lower --lr or check the store with "
                    "`s2gen validate`"
                )
            optimizer.step()
            model.after_step()
            step += 1
            bar.update(1)
            saving = step % cfg.ckpt_every == 0 or step == cfg.steps
            spans = span.spans(world, step) if span is not None and saving else None  # every rank
            if not lead:
                continue
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                rate = (step - tick_step) * cfg.batch_size * world / max(now - tick, 1e-9)
                tick, tick_step = now, step
                train = {k: float(v.detach()) for k, v in losses.items()}
                train.update(lr=lr, grad_norm=float(norm), samples_per_s=rate, **extra)
                train["train_s"] = now - started  # the loop's wall time, over resumed parts
                metrics.write(step, train)
                final.update(train)
                shown = [k for k in ("loss", "mts", "mlm", "itc", "inst") if k in train]
                bar.set_postfix({k: f"{train[k]:.3g}" for k in shown + ["samples_per_s"]})
            improved = False
            if val_batch is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                val = model.validate(val_batch, dev)
                metrics.write(step, val)
                final.update(val)
                improved = val["val_loss"] < best
                best = min(best, val["val_loss"])
            if spans is not None:
                settings["rows"] = _rows_record(spans)
                _write_settings(out, cfg, settings)
            if saving or improved:
                ckpt = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "config": cfg.to_dict(),
                    "vocabulary": vocabulary or [],
                    "step": step,
                    "best_val_loss": best,
                    "world_size": world,
                    "rng": checkpoint.rng_state(generator),
                    "train_s": time.perf_counter() - started,
                }
                if hasattr(batch_hook, "state_dict"):  # e.g. the OATS score cache
                    ckpt["hook"] = batch_hook.state_dict()
                if fresh:
                    ckpt["generate"] = generate
                    ckpt["rows"] = [[r["first_row"], r["last_row"]] for r in settings["rows"]]
                if improved:
                    checkpoint.save(out / checkpoint.BEST, ckpt)
                if saving:
                    checkpoint.save(last, ckpt)
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    return final


def _rows_record(spans: list) -> list[dict]:
    """The ``rows`` entry of ``run.json``: per rank, the first and last row trained on."""
    return [
        {"rank": r, "first_row": first, "last_row": last} for r, (first, last) in enumerate(spans)
    ]


def _write_settings(out: Path, cfg: PretrainConfig, settings: dict) -> None:
    """``config.json`` (the effective config, a valid ``--config`` file) and ``run.json``."""
    (out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    (out / "run.json").write_text(json.dumps(settings, indent=2) + "\n")
