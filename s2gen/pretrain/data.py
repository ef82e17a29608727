"""Training samples from an S2 store: chunk-shuffled windows paired with tokens.

A sample is one univariate window of an output channel y_j (optionally also
of an input channel x_i, without a symbol), instance-normalised, with the
prefix tokens of f_j. ``S2WindowStream`` is an endless ``IterableDataset``
that reads whole store chunks, shuffles chunk order per epoch and samples
within a buffer of ``buffer_chunks`` chunks, gives each (DDP rank, DataLoader
worker) its own chunks, and yields ready batches. Its order is a pure function
of (config, rank, world size), so a resume skips exactly the consumed batches.

Splits are by row and deterministic in the row's stored seed: ``seed % 1000 <
val_permille`` is "val", the next ``reference_permille`` per mille is
"reference" (kept for OATS); training never sees either.
"""

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from s2gen.pretrain.config import PretrainConfig
from s2gen.store import S2Store
from s2gen.store import open as open_store

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "reference")
NORM_EPS = 1e-5  # variance floor of the instance normalisation
CLIP = 10.0  # normalised values are clipped to +-CLIP standard deviations
_HASH_BASE = np.uint64(0x100000001B3)  # FNV-64 prime, base of the expression hash


def split_of(seed: np.ndarray, val_permille: int = 10, reference_permille: int = 10) -> np.ndarray:
    """Split code per row (0 train, 1 val, 2 reference) from the stored row seeds.

    seed : (n,) uint64. Returns (n,) int8, an index into ``SPLITS``.
    """
    r = np.asarray(seed, np.uint64) % np.uint64(1000)
    out = np.zeros(r.shape, np.int8)
    out[r < val_permille] = 1
    out[(r >= val_permille) & (r < val_permille + reference_permille)] = 2
    return out


def expression_ids(tokens: np.ndarray) -> np.ndarray:
    """A 63-bit content hash per token row: equal expressions get equal ids.

    tokens : (k, T) integer ids (padding included). Returns (k,) int64 >= 0.
    """
    t = np.asarray(tokens).astype(np.uint64)
    powers = _HASH_BASE ** np.arange(t.shape[-1], dtype=np.uint64)  # wraps mod 2^64
    with np.errstate(over="ignore"):
        h = (t * powers).sum(axis=-1, dtype=np.uint64)
    return (h >> np.uint64(1)).astype(np.int64)


def normalize_windows(w: np.ndarray) -> np.ndarray:
    """Instance normalisation: (w - mean) / sqrt(var + 1e-5) per row, clipped to +-10.

    w : (k, L) float. Returns (k, L) float32. ``SeriesEncoder`` does the same in torch.
    """
    w = np.asarray(w, np.float64)
    mean = w.mean(axis=-1, keepdims=True)
    var = w.var(axis=-1, keepdims=True)
    return np.clip((w - mean) / np.sqrt(var + NORM_EPS), -CLIP, CLIP).astype(np.float32)


def _check_store(store: S2Store, cfg: PretrainConfig) -> None:
    if store.config.length < cfg.window:
        raise ValueError(
            f"window={cfg.window} exceeds the store's series length {store.config.length}; "
            f"use a window <= {store.config.length} (a multiple of patch={cfg.patch})"
        )


def chunk_samples(
    chunk: dict[str, np.ndarray],
    start: int,
    cfg: PretrainConfig,
    split: int,
    rng: np.random.Generator | None,
) -> dict[str, np.ndarray]:
    """All samples of the rows of one split in a block of store rows.

    Parameters
    ----------
    chunk : arrays ``y``, ``n_out``, ``tokens``, ``seed`` (and ``x``, ``n_in`` when
        ``cfg.use_inputs``) of rows ``start ..``.
    split : index into ``SPLITS``.
    rng : draws the window offsets; None takes the centred window.

    Returns
    -------
    ``series`` (k, window) float32 normalised, ``tokens`` (k, T) int16,
    ``has_symbol`` (k,) bool, ``row`` (k,) int64, ``channel`` (k,) int64,
    ``expr_id`` (k,) int64 (-1 without a symbol), ``offset`` (k,) int64 (the
    window's first point in the series: OATS caches scores per window).
    """
    keep = split_of(chunk["seed"], cfg.val_permille, cfg.reference_permille) == split
    tokens = chunk["tokens"]
    parts = [_channel_samples(chunk["y"], chunk["n_out"], keep, tokens)]
    if cfg.use_inputs:
        no_symbol = np.zeros(chunk["x"].shape[:2] + tokens.shape[2:], tokens.dtype)
        parts.append(_channel_samples(chunk["x"], chunk["n_in"], keep, no_symbol, False))
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    length = out["values"].shape[-1]
    k = len(out["row"])
    if rng is None:
        offset = np.full(k, (length - cfg.window) // 2)
    else:
        offset = rng.integers(0, length - cfg.window + 1, size=k)
    idx = offset[:, None] + np.arange(cfg.window)  # (k, window)
    out["series"] = normalize_windows(np.take_along_axis(out.pop("values"), idx, axis=1))
    out["offset"] = offset.astype(np.int64)
    out["row"] += start
    return out


def _channel_samples(values, n_real, keep, tokens, has_symbol=True) -> dict[str, np.ndarray]:
    """Real channels of the kept rows: values (n, C, L), tokens (n, C, T) -> per sample."""
    channels = values.shape[1]
    real = (np.arange(channels)[None, :] < n_real[:, None]) & keep[:, None]  # (n, C)
    row, channel = np.nonzero(real)
    tok = tokens[row, channel]  # (k, T)
    ids = expression_ids(tok) if has_symbol else np.full(len(row), -1, np.int64)
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

    Tokens are cut to ``max_tokens`` and then to the longest real expression
    of the batch (at least one column).
    """
    tok = samples["tokens"][:, :max_tokens]
    longest = int((tok != 0).sum(axis=1).max(initial=0)) if tok.size else 0
    tok = tok[:, : max(longest, 1)]
    return {
        "series": torch.from_numpy(np.ascontiguousarray(samples["series"])),
        "tokens": torch.from_numpy(tok.astype(np.int64)),
        "has_symbol": torch.from_numpy(samples["has_symbol"]),
        "row": torch.from_numpy(samples["row"]),
        "channel": torch.from_numpy(samples["channel"]),
        "expr_id": torch.from_numpy(samples["expr_id"]),
        "offset": torch.from_numpy(samples["offset"]),
    }


def _fields(cfg: PretrainConfig) -> tuple[str, ...]:
    base = ("y", "n_out", "tokens", "seed")
    return base + ("x", "n_in") if cfg.use_inputs else base


class S2WindowStream(IterableDataset):
    """Endless stream of training batches from the "train" rows of a store.

    Parameters
    ----------
    store_path : an s2gen store (complete).
    cfg : window, batch size, buffer, workers, seed, split and ``use_inputs``.
    rank, world_size : this DDP process and the number of processes.
    start_batch : batches this rank already consumed (skipped on resume).

    Notes
    -----
    Stream s = rank * W + worker (W = max(num_workers, 1)) of S = world * W owns
    chunks ``order[s::S]`` of each epoch's shuffled chunk order; a DataLoader
    takes batches from its workers in turn, so batch b of a rank comes from
    worker b % W. Everything random derives from (cfg.seed, epoch, stream).
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
        stream = self.rank * workers + worker
        n_streams = self.world_size * workers
        skip = max(0, -(-(self.start_batch - worker) // workers))
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
        return chunk_samples(arrays, start, self.cfg, SPLITS.index("train"), rng)


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

    Windows are centred (no randomness), only output channels (with their
    symbol) are taken, rows in store order: the set is the same for every run
    on the store. Returns the batch dict of
    ``collate`` (possibly with fewer samples if the split is small).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; choose one of {', '.join(SPLITS)}")
    limit = cfg.val_samples if limit is None else limit
    cfg = cfg.replace(use_inputs=False)  # held-out samples are pairs (series, symbol)
    store = open_store(str(store_path))
    _check_store(store, cfg)
    parts, have = [], 0
    for start in range(0, len(store), store.chunk_rows):
        if have >= limit:
            break
        stop = min(start + store.chunk_rows, len(store))
        part = chunk_samples(
            store.read(start, stop, _fields(cfg)), start, cfg, SPLITS.index(split), None
        )
        parts.append(part)
        have += len(part["row"])
    if not parts or have == 0:
        log.warning("store %s has no %s rows", store_path, split)
        return None
    merged = {k: np.concatenate([p[k] for p in parts])[:limit] for k in parts[0]}
    return collate(merged, cfg.max_tokens)
