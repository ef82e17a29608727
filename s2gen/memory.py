"""Memory a command needs, estimated from its settings before it starts.

A generation worker holds one shard's x and y in float32 and their encoding;
a training step holds the activations autograd saves, which grow with the
batch. Each estimate is a count of bytes from the config times a factor
measured on this code (``benchmarks/bench_memory.py``, figures in BENCHMARKS.md),
compared with the memory the machine has available now (``/proc/meminfo``
``MemAvailable``, capped by a cgroup limit). A setting that does not fit is
refused up front with the largest value that fits, instead of the kernel's
out-of-memory killer ending the run half way. Torch-free.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path

from s2gen.config import GenerateConfig, StoreConfig
from s2gen.symbols.vocabulary import vocabulary

GB = 1e9
# bytes of x + y (float32) per shard: every chunk stays far below blosc's 2 GB buffer limit
# and a worker's peak near 2.3 GB
SHARD_LIMIT = 1_000_000_000
GENERATION_BASE = 250e6  # RSS of a worker with the kernels loaded (measured 236 MB)
GENERATION_FACTOR = 2.0  # peak RSS per byte of a shard's x + y (measured 1.86 to 2.4)
FLOAT = 4  # bytes per float32


class NotEnoughMemory(ValueError):
    """A setting needs more memory than the machine has; ``parameter`` names the option."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def available_bytes() -> int | None:
    """Memory available to new allocations now: MemAvailable, capped by a cgroup limit.

    None where neither /proc/meminfo nor sysconf tells (the checks are then skipped).
    """
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    headroom = _cgroup_headroom()
    return available if headroom is None else min(available, headroom)


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2, then v1); None if unlimited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= 1 << 60:
            return None
        return max(0, int(limit_text) - usage)
    return None


def largest_fitting(need: Callable[[int], float], low: int, high: int, budget: float) -> int:
    """The largest v in [low, high] with need(v) <= budget (need grows with v); low - 1 if none."""
    if need(low) > budget:
        return low - 1
    while low < high:
        mid = (low + high + 1) // 2
        if need(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


# --- generation ---------------------------------------------------------------------------


def shard_bytes(config: GenerateConfig, shard_rows: int) -> int:
    """Bytes of one shard's x and y as generated (float32, whatever the store dtype)."""
    channels = config.max_input_dim + config.max_output_dim
    return shard_rows * channels * config.length * FLOAT


def generation_bytes(config: GenerateConfig, shard_rows: int, workers: int) -> float:
    """Peak memory of a local generation run: each worker holds one shard at a time."""
    per_worker = GENERATION_BASE + GENERATION_FACTOR * shard_bytes(config, shard_rows)
    driver = GENERATION_BASE if workers > 1 else 0.0
    return driver + workers * per_worker


def workers_that_fit(
    config: GenerateConfig, shard_rows: int, most: int, available: int | None = None
) -> int:
    """The most local workers, up to ``most``, whose shards fit in memory (at least 1)."""
    available = available_bytes() if available is None else available
    if available is None:
        return most
    fits = largest_fitting(lambda w: generation_bytes(config, shard_rows, w), 1, most, available)
    return max(1, fits)


def check_generation(
    config: GenerateConfig,
    store_config: StoreConfig,
    workers: int | None,
    available: int | None = None,
) -> None:
    """Refuse a layout whose shards are too large, or too many of them for the memory.

    Raises NotEnoughMemory naming ``--shard-rows`` (and the largest value that
    fits) when one shard's x + y exceed ``SHARD_LIMIT``, or ``--workers``
    when ``workers`` local shards in flight exceed the available memory
    (``workers`` None: shards run elsewhere, on a cluster; only the size is checked).
    """
    rows = store_config.shard_rows
    per_row = shard_bytes(config, 1)
    if rows * per_row > SHARD_LIMIT:
        fits = _power_of_two_at_most(SHARD_LIMIT // per_row)
        raise NotEnoughMemory(
            f"--length {config.length} with --shard-rows {rows} makes shards of "
            f"{rows * per_row / GB:.1f} GB of x and y ({per_row:,} bytes a row); the limit is "
            f"{SHARD_LIMIT / GB:.1f} GB: use --shard-rows {fits} --chunk-rows "
            f"{min(fits, store_config.chunk_rows)} or smaller",
            "--shard-rows",
        )
    available = available_bytes() if available is None else available
    if available is None or workers is None:
        return
    need = generation_bytes(config, rows, workers)
    if need > available:
        fits = largest_fitting(lambda w: generation_bytes(config, rows, w), 1, workers, available)
        fix = f"use --workers {fits}" if fits >= 1 else f"use a smaller --shard-rows (now {rows})"
        raise NotEnoughMemory(
            f"--workers {workers} with shards of {rows} rows need about {need / GB:.1f} GB, "
            f"this machine has {available / GB:.1f} GB available; {fix}",
            "--workers",
        )


def _power_of_two_at_most(n: int) -> int:
    return 1 << max(0, int(n).bit_length() - 1)


# --- transformer training and inference ----------------------------------------------------

# Floats autograd keeps per token of one pre-norm block in a training pass (block inputs,
# norms, q/k/v, the attention output, the MLP's two wide tensors; attention weights per
# head and key), per MLM logit, and per entry of the contrastive matrices (similarities,
# scaled, targets, log-softmax, both directions). ACTIVATION_FACTOR (pretraining) and
# FINETUNE_FACTOR (one pass of the series tower) scale the count to the measured peak RSS
# of a step (gradients, the allocator); INFERENCE_FACTOR does the same for the live floats
# of one block under no_grad. Fitted with benchmarks/bench_memory.py (BENCHMARKS.md).
SAVED_PER_D = 8
SAVED_PER_FF = 2
SAVED_PER_KEY = 2
SAVED_PER_LOGIT = 3
SAVED_PER_CONTRAST = 10
DROPOUT_PER_D = 2.5  # two residual dropouts: output float + bool mask each
DROPOUT_PER_KEY = 1.25  # attention dropout: output float + bool mask
ACTIVATION_FACTOR = 1.3
STEP_OVERHEAD = 150e6  # a first training step's own buffers (autograd, oneDNN), measured
RUN_OVERHEAD = 200e6  # a whole `s2gen pretrain` run beyond its steps (data, validation, saving)
FINETUNE_FACTOR = 1.6
INFERENCE_FACTOR = 1.5
INFERENCE_OVERHEAD = 25e6  # an inference pass's own buffers, measured
TOKENS_UNSIZED = 96  # max_tokens assumed before a run sizes it from its store (max_tokens = 0)


def _tokens(cfg) -> int:
    return cfg.max_tokens or TOKENS_UNSIZED


def _block_params(d: int, d_ff: int) -> int:
    return 4 * d * d + 2 * d * d_ff + 9 * d + d_ff  # qkv, out, MLP, two LayerNorms


def _tower_floats(
    tokens: int, d: int, d_ff: int, heads: int, layers: int, dropout: float = 0.0
) -> float:
    """Floats one sample keeps for backward in one pass through a tower.

    Dropout (p > 0) adds its outputs and masks: on the attention weights and
    on both residual branches.
    """
    per_d, per_key = SAVED_PER_D, SAVED_PER_KEY
    if dropout > 0:
        per_d, per_key = per_d + DROPOUT_PER_D, per_key + DROPOUT_PER_KEY
    return layers * tokens * (per_d * d + SAVED_PER_FF * d_ff + per_key * heads * tokens)


def series_tower(cfg) -> tuple[int, int, int, int]:
    """(width, MLP width, heads, blocks) of the series encoder of ``cfg``.

    The ``gpt2`` backbone has ``llm_layers`` blocks of its base: the base's
    sizes from ``backbone_weights``/config.json, else the random base of
    ``d_model``, ``d_ff``, ``n_heads``. Its frozen weights are counted as if
    they trained (an upper bound: they hold no gradients or AdamW moments).
    """
    if cfg.backbone != "gpt2":
        return cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.n_layers
    if not cfg.backbone_weights:
        return cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.llm_layers
    try:
        base = json.loads((Path(cfg.backbone_weights) / "config.json").read_text())
        width, heads, depth = int(base["n_embd"]), int(base["n_head"]), int(base["n_layer"])
    except (OSError, ValueError, KeyError, TypeError):  # the backbone reports a bad folder
        return cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.llm_layers
    return width, int(base.get("n_inner") or 4 * width), heads, min(cfg.llm_layers, depth)


def pretrain_parameters(cfg, vocab_size: int | None = None) -> tuple[int, int]:
    """(online, momentum) parameter counts of a ``Pretrainer`` of the ``s2`` objective."""
    vocab_size = len(vocabulary()) if vocab_size is None else vocab_size
    d, d_ff, _, layers = series_tower(cfg)
    sd, e = cfg.sym_d_model, cfg.embed_dim
    series = layers * _block_params(d, d_ff) + (cfg.patch + 1) * d + (cfg.n_patches + 3) * d + 2 * d
    symbol = (
        cfg.sym_layers * _block_params(sd, cfg.sym_d_ff)
        + (vocab_size + _tokens(cfg) + 1) * sd
        + 2 * sd
    )
    projections = (d + 1) * e + (sd + 1) * e
    heads = (d + 1) * cfg.patch + sd * sd + 3 * sd + vocab_size
    return series + symbol + projections + heads, series + symbol + projections


def pretrain_bytes(cfg, vocab_size: int | None = None) -> float:
    """Peak memory of a pretraining run with ``cfg`` (a PretrainConfig) in one process, on CPU.

    A training step (``pretrain_step_bytes``) plus what the run holds beside
    it: the data stream's chunk buffer, the held-out validation set and the
    checkpoint being written.
    """
    return pretrain_step_bytes(cfg, vocab_size) + RUN_OVERHEAD


def pretrain_step_bytes(cfg, vocab_size: int | None = None) -> float:
    """Peak memory of pretraining steps with ``cfg``, beyond the imported torch, on CPU.

    Parameters, gradients and AdamW moments of the online model, the momentum
    copies and queues, and the activations of one step: the series tower's
    masked pass and its clean passes (one for the contrast, two with the
    ``timedrl`` term), the symbol tower's masked and clean passes, the MLM
    logits and the contrastive matrices of the batch against batch + queue.
    """
    vocab_size = len(vocabulary()) if vocab_size is None else vocab_size
    online, momentum = pretrain_parameters(cfg, vocab_size)
    fixed = FLOAT * (4 * online + momentum + 2 * cfg.queue_size * (cfg.embed_dim + 1))
    series_passes = 1 + (2 if "timedrl" in cfg.objectives else 1) + ("crops" in cfg.objectives)
    tokens = _tokens(cfg)
    d, d_ff, heads, layers = series_tower(cfg)
    per_sample = series_passes * _tower_floats(
        cfg.n_patches + 1, d, d_ff, heads, layers, cfg.dropout
    ) + 2 * _tower_floats(
        tokens + 1, cfg.sym_d_model, cfg.sym_d_ff, cfg.sym_heads, cfg.sym_layers, cfg.dropout
    )
    per_sample += SAVED_PER_LOGIT * tokens * vocab_size + 2 * cfg.window
    b = cfg.batch_size
    contrast = SAVED_PER_CONTRAST * b * (b + cfg.queue_size)
    return fixed + STEP_OVERHEAD + ACTIVATION_FACTOR * FLOAT * (b * per_sample + contrast)


def encoder_bytes(cfg, batch: int, train: bool) -> float:
    """Peak memory of the series encoder of ``cfg`` on ``batch`` windows.

    ``train``: one pass with gradients and AdamW state (fine-tuning);
    otherwise an inference pass under no_grad (embedding).
    """
    tokens = cfg.n_patches + 1
    d, d_ff, heads, layers = series_tower(cfg)
    params = layers * _block_params(d, d_ff)
    if train:
        floats = _tower_floats(tokens, d, d_ff, heads, layers, cfg.dropout)
        per_sample = floats + 8 * cfg.window  # plus the input normalisation's copies
        return FLOAT * (4 * params + FINETUNE_FACTOR * batch * per_sample) + STEP_OVERHEAD
    live = tokens * (4 * d + d_ff + 2 * heads * tokens) + cfg.window
    return FLOAT * (params + INFERENCE_FACTOR * batch * live) + INFERENCE_OVERHEAD


def check_batch(
    need: Callable[[int], float],
    batch: int,
    processes: int = 1,
    parameter: str = "--batch-size",
    low: int = 1,
    available: int | None = None,
) -> None:
    """Refuse a batch size whose peak ``need(batch)`` (x ``processes``) exceeds the memory.

    Raises NotEnoughMemory with the largest batch size that fits; does
    nothing when the available memory is unknown.
    """
    available = available_bytes() if available is None else available
    if available is None:
        return
    total = processes * need(batch)
    if total <= available:
        return
    where = f" x {processes} processes" if processes > 1 else ""
    fits = largest_fitting(lambda b: processes * need(b), low, batch, available)
    fix = (
        f"use {parameter} <= {fits}"
        if fits >= low
        else f"even {parameter} {low} does not fit: use a smaller model or free memory"
    )
    raise NotEnoughMemory(
        f"{parameter} {batch}{where} needs about {total / GB:.1f} GB, this machine has "
        f"{available / GB:.1f} GB available; {fix}",
        parameter,
    )


def check_pretrain(cfg, device: str = "auto", available: int | None = None) -> None:
    """Refuse ``cfg.batch_size`` if a pretraining step would not fit in CPU memory.

    On CUDA (``device`` "cuda", or "auto" with a GPU) nothing is checked: the
    estimate is calibrated for CPU memory. Under torchrun every local process
    (``LOCAL_WORLD_SIZE``) needs its own share.
    """
    if device == "cuda" or (device == "auto" and _cuda_available()):
        return
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    check_batch(
        lambda b: pretrain_bytes(cfg.replace(batch_size=b)),
        cfg.batch_size,
        processes,
        low=2,
        available=available,
    )


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
