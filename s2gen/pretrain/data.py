"""Training samples from an S2 store: chunk-shuffled windows paired with symbol tokens.

A sample is one univariate window of an output channel y_j (optionally also
of an input channel x_i, without a symbol) with the canonical tokens of f_j
(``s2gen.pretrain.symbols``). Windows are *raw*: the model normalises each one
with its visible points (``s2gen.pretrain.scaling``). A share ``crop_prob`` of
the windows is cut from a random span of ``crop_min`` to ``crop_max`` windows
(log-uniform, capped by the series) and linearly resampled to ``window``
points: stretched short spans and downsampled long ones, the views evaluation
produces when it resizes real series.

``S2WindowStream`` is an endless ``IterableDataset`` that reads whole store
chunks, shuffles chunk order per epoch and samples within a buffer of
``buffer_chunks`` chunks, gives each (DDP rank, DataLoader worker) its own
chunks, and yields ready batches. Its order is a pure function of (config,
rank, world size), so a resume at any step skips exactly the consumed batches.

Splits are by row and deterministic in the row's stored seed: ``seed % 1000 <
val_permille`` is "val", the next ``reference_permille`` per mille is
"reference" (kept for OATS); training never sees either.
"""

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.symbols import canonical_tokens, covering_length, skeleton_ids
from s2gen.store import S2Store
from s2gen.store import open as open_store

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "reference")
LENGTH_SAMPLE_ROWS = 50_000  # rows read to size max_tokens


def split_of(seed: np.ndarray, val_permille: int = 10, reference_permille: int = 10) -> np.ndarray:
    """Split code per row (0 train, 1 val, 2 reference) from the stored row seeds.

    seed : (n,) uint64. Returns (n,) int8, an index into ``SPLITS``.
    """
    r = np.asarray(seed, np.uint64) % np.uint64(1000)
    out = np.zeros(r.shape, np.int8)
    out[r < val_permille] = 1
    out[(r >= val_permille) & (r < val_permille + reference_permille)] = 2
    return out


def resample_spans(
    values: np.ndarray, start: np.ndarray, span: np.ndarray, window: int
) -> np.ndarray:
    """``window`` evenly spaced points of each row's span, by linear interpolation.

    Parameters
    ----------
    values : (k, L) float series.
    start : (k,) float, first position of each span (>= 0).
    span : (k,) float, span lengths in points (start + span - 1 <= L - 1).
    window : points returned per row.

    Returns
    -------
    (k, window) float32; point i of row r is ``values[r]`` at position
    ``start + i * (span - 1) / (window - 1)`` (first and last points of the span kept,
    the same grid as ``scaling.resize_linear``).
    """
    pos = start[:, None] + np.arange(window)[None, :] * ((span - 1) / (window - 1))[:, None]
    pos = np.clip(pos, 0.0, values.shape[1] - 1)
    left = np.floor(pos).astype(np.int64)
    right = np.minimum(left + 1, values.shape[1] - 1)
    frac = pos - left
    a = np.take_along_axis(values, left, axis=1).astype(np.float64)
    b = np.take_along_axis(values, right, axis=1).astype(np.float64)
    return (a + frac * (b - a)).astype(np.float32)


def draw_windows(
    values: np.ndarray, cfg: PretrainConfig, rng: np.random.Generator | None
) -> np.ndarray:
    """Training windows (k, window) float32 of series (k, L): plain windows or resampled spans.

    rng None: the centred plain window of every row (held-out sets).
    """
    k, length = values.shape
    window = cfg.window
    if rng is None:
        return values[:, (length - window) // 2 :][:, :window].astype(np.float32)
    span = np.full(k, float(window))
    crop = rng.random(k) < cfg.crop_prob
    low = np.log(max(2.0, cfg.crop_min * window))
    high = np.log(min(float(length), cfg.crop_max * window))
    span[crop] = np.round(np.exp(rng.uniform(low, max(low, high), size=int(crop.sum()))))
    start = np.floor(rng.random(k) * (length - span + 1))
    plain = span == window
    out = np.empty((k, window), np.float32)
    if plain.any():
        idx = start[plain].astype(np.int64)[:, None] + np.arange(window)
        out[plain] = np.take_along_axis(values[plain], idx, axis=1)
    if (~plain).any():
        out[~plain] = resample_spans(values[~plain], start[~plain], span[~plain], window)
    return out


def _check_store(store: S2Store, cfg: PretrainConfig) -> None:
    if store.config.length < cfg.window:
        raise ValueError(
            f"window={cfg.window} exceeds the store's series length {store.config.length}; "
            f"use a window <= {store.config.length} (a multiple of {cfg.token_points} points)"
        )


def symbol_lengths(store: S2Store, limit: int = LENGTH_SAMPLE_ROWS) -> np.ndarray:
    """Canonical token lengths (k,) of the outputs of up to ``limit`` rows, chunks spread evenly."""
    n_chunks = -(-len(store) // store.chunk_rows)
    take = max(1, min(n_chunks, -(-limit // store.chunk_rows)))
    n_stored = len(store.vocabulary)
    out = []
    for c in np.unique(np.linspace(0, n_chunks - 1, take).round().astype(np.int64)):
        start = int(c) * store.chunk_rows
        part = store.read(start, min(start + store.chunk_rows, len(store)), ("tokens", "n_out"))
        real = np.arange(part["tokens"].shape[1])[None, :] < part["n_out"][:, None]
        out.append(canonical_tokens(part["tokens"][real], n_stored)[1])
    return np.concatenate(out)


def resolve_max_tokens(store: S2Store, cfg: PretrainConfig) -> tuple[PretrainConfig, float]:
    """``cfg`` with ``max_tokens`` sized from the store when it is 0, and the share truncated.

    The size covers at least 99% of the store's expressions (sampled); the
    share of expressions longer than the final ``max_tokens`` is returned so
    the run can log it.
    """
    lengths = symbol_lengths(store)
    if cfg.max_tokens == 0:
        cfg = cfg.replace(max_tokens=covering_length(lengths))
    truncated = float((lengths > cfg.max_tokens).mean()) if lengths.size else 0.0
    return cfg, truncated


def chunk_samples(
    chunk: dict[str, np.ndarray],
    start: int,
    cfg: PretrainConfig,
    split: int,
    rng: np.random.Generator | None,
    n_stored: int,
) -> dict[str, np.ndarray]:
    """All samples of the rows of one split in a block of store rows.

    Parameters
    ----------
    chunk : arrays ``y``, ``n_out``, ``tokens``, ``seed`` (and ``x``, ``n_in`` when
        ``cfg.use_inputs``) of rows ``start ..``.
    split : index into ``SPLITS``.
    rng : draws the windows (``draw_windows``); None takes centred plain windows.
    n_stored : size of the store's vocabulary (canonical decade ids start there).

    Returns
    -------
    ``series`` (k, window) float32 raw, ``tokens`` (k, T) int16 canonical,
    ``has_symbol`` (k,) bool, ``row`` (k,) int64, ``channel`` (k,) int64,
    ``expr_id`` (k,) int64 skeleton id (-1 without a symbol).
    """
    keep = split_of(chunk["seed"], cfg.val_permille, cfg.reference_permille) == split
    tokens = chunk["tokens"]
    parts = [_channel_samples(chunk["y"], chunk["n_out"], keep, tokens, n_stored)]
    if cfg.use_inputs:
        no_symbol = np.zeros(chunk["x"].shape[:2] + tokens.shape[2:], tokens.dtype)
        parts.append(_channel_samples(chunk["x"], chunk["n_in"], keep, no_symbol, n_stored, False))
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    out["series"] = draw_windows(out.pop("values"), cfg, rng)
    out["row"] += start
    return out


def _channel_samples(
    values, n_real, keep, tokens, n_stored, has_symbol=True
) -> dict[str, np.ndarray]:
    """Real channels of the kept rows: values (n, C, L), tokens (n, C, T) -> per sample."""
    channels = values.shape[1]
    real = (np.arange(channels)[None, :] < n_real[:, None]) & keep[:, None]  # (n, C)
    row, channel = np.nonzero(real)
    tok, _ = canonical_tokens(tokens[row, channel], n_stored)  # (k, T)
    ids = skeleton_ids(tok, n_stored) if has_symbol else np.full(len(row), -1, np.int64)
    return {
        "values": values[row, channel],  # (k, L)
        "tokens": tok,
        "has_symbol": np.full(len(row), has_symbol),
        "row": row.astype(np.int64),
        "channel": channel.astype(np.int64),
        "expr_id": ids,
    }


def collate(samples: dict[str, np.ndarray], max_tokens: int) -> dict[str, torch.Tensor]:
    """Numpy samples -> the training batch dict of tensors.

    Tokens are cut to ``max_tokens`` (0 keeps them all) and then to the
    longest real expression of the batch (at least one column).
    """
    tok = samples["tokens"][:, :max_tokens] if max_tokens else samples["tokens"]
    longest = int((tok != 0).sum(axis=1).max(initial=0)) if tok.size else 0
    tok = tok[:, : max(longest, 1)]
    return {
        "series": torch.from_numpy(np.ascontiguousarray(samples["series"])),
        "tokens": torch.from_numpy(tok.astype(np.int64)),
        "has_symbol": torch.from_numpy(samples["has_symbol"]),
        "row": torch.from_numpy(samples["row"]),
        "channel": torch.from_numpy(samples["channel"]),
        "expr_id": torch.from_numpy(samples["expr_id"]),
    }


def _fields(cfg: PretrainConfig) -> tuple[str, ...]:
    base = ("y", "n_out", "tokens", "seed")
    return base + ("x", "n_in") if cfg.use_inputs else base


class S2WindowStream(IterableDataset):
    """Endless stream of training batches from the "train" rows of a store.

    Parameters
    ----------
    store_path : an s2gen store (complete).
    cfg : window, crops, batch size, buffer, workers, seed, split and ``use_inputs``.
    rank, world_size : this DDP process and the number of processes.
    start_batch : batches this rank already consumed (skipped on resume).

    Notes
    -----
    Stream s = rank * W + role (W = max(num_workers, 1)) of S = world * W owns
    chunks ``order[s::S]`` of each epoch's shuffled chunk order, and batch b of
    a rank comes from role b % W. A DataLoader takes batches from its workers
    in turn starting with worker 0, so after a resume at batch s0 worker w
    plays role (w + s0) % W: the resumed loader yields batches s0, s0 + 1, ...
    of the uninterrupted order whatever s0 is. Everything random derives from
    (cfg.seed, epoch, stream).
    """

    def __init__(
        self,
        store_path: str,
        cfg: PretrainConfig,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        super().__init__()
        self.store_path = str(store_path)
        self.cfg = cfg
        self.rank, self.world_size = rank, world_size
        self.start_batch = start_batch
        store = open_store(self.store_path)
        _check_store(store, cfg)
        self.n_rows, self.chunk_rows = len(store), store.chunk_rows
        self.n_stored = len(store.vocabulary)
        self.n_chunks = -(-self.n_rows // self.chunk_rows)
        workers = max(cfg.num_workers, 1)
        if world_size * workers > self.n_chunks:
            raise ValueError(
                f"{world_size} process(es) x {workers} worker(s) exceed the store's "
                f"{self.n_chunks} chunks; use fewer num_workers or a store with smaller chunk_rows"
            )

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        role = (worker + self.start_batch) % workers
        stream = self.rank * workers + role
        n_streams = self.world_size * workers
        skip = max(0, -(-(self.start_batch - role) // workers))  # batches role already made
        batches = self._batches(stream, n_streams)
        for _ in range(skip):
            next(batches)
        yield from batches

    def _batches(self, stream: int, n_streams: int):
        cfg = self.cfg
        store = open_store(self.store_path)
        carry: dict[str, np.ndarray] | None = None  # samples left over from the last buffer
        epoch = 0
        while True:
            order = np.random.default_rng([cfg.seed, epoch]).permutation(self.n_chunks)
            mine = order[stream::n_streams]
            produced = 0
            for g in range(0, len(mine), cfg.buffer_chunks):
                rng = np.random.default_rng([cfg.seed, epoch, stream, g])
                group = [self._read(store, c, rng) for c in mine[g : g + cfg.buffer_chunks]]
                if carry is not None:
                    group.insert(0, carry)
                pool = {k: np.concatenate([p[k] for p in group]) for k in group[0]}
                perm = rng.permutation(len(pool["row"]))
                pool = {k: v[perm] for k, v in pool.items()}
                produced += len(perm) - (0 if carry is None else len(carry["row"]))
                n_full = len(perm) // cfg.batch_size
                for i in range(n_full):
                    part = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
                    yield collate({k: v[part] for k, v in pool.items()}, cfg.max_tokens)
                carry = {k: v[n_full * cfg.batch_size :] for k, v in pool.items()}
            if produced == 0:
                raise ValueError(
                    f"stream {stream} found no training rows in its chunks of {self.store_path}; "
                    "use a larger store or fewer workers"
                )
            epoch += 1

    def _read(self, store: S2Store, chunk: int, rng: np.random.Generator):
        start = chunk * self.chunk_rows
        stop = min(start + self.chunk_rows, self.n_rows)
        arrays = store.read(start, stop, _fields(self.cfg))
        return chunk_samples(arrays, start, self.cfg, SPLITS.index("train"), rng, self.n_stored)


def make_loader(
    store_path: str, cfg: PretrainConfig, rank: int = 0, world_size: int = 1, start_batch: int = 0
) -> DataLoader:
    """DataLoader over ``S2WindowStream`` (batches come ready; ``cfg.num_workers`` workers)."""
    dataset = S2WindowStream(store_path, cfg, rank, world_size, start_batch)
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        prefetch_factor=4 if cfg.num_workers else None,
    )


def held_out_set(
    store_path: str, cfg: PretrainConfig, split: str = "val", limit: int | None = None
):
    """The first ``limit`` (default ``cfg.val_samples``) samples of a held-out split, as a batch.

    Windows are centred plain windows (no randomness), only output channels
    (with their symbol) are taken, rows in store order: the set is the same
    for every run on the store. Returns the batch dict of ``collate``
    (possibly with fewer samples if the split is small), or None if the split is empty.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; choose one of {', '.join(SPLITS)}")
    limit = cfg.val_samples if limit is None else limit
    cfg = cfg.replace(use_inputs=False)  # held-out samples are pairs (series, symbol)
    store = open_store(str(store_path))
    _check_store(store, cfg)
    n_stored = len(store.vocabulary)
    parts, have = [], 0
    for start in range(0, len(store), store.chunk_rows):
        if have >= limit:
            break
        stop = min(start + store.chunk_rows, len(store))
        arrays = store.read(start, stop, _fields(cfg))
        part = chunk_samples(arrays, start, cfg, SPLITS.index(split), None, n_stored)
        parts.append(part)
        have += len(part["row"])
    if not parts or have == 0:
        log.warning("store %s has no %s rows", store_path, split)
        return None
    merged = {k: np.concatenate([p[k] for p in parts])[:limit] for k in parts[0]}
    return collate(merged, cfg.max_tokens)
