"""The training stream: chunk-shuffled batches over all data sources, and the held-out set.

``S2WindowStream`` is an endless ``IterableDataset`` over the sources of
``s2gen.pretrain.sources`` (S2 stores, real series): it numbers their chunks
one after the other, shuffles that order per epoch, samples within a buffer
of ``buffer_chunks`` chunks, gives each (DDP rank, DataLoader worker) its own
chunks and yields ready batches (``data.collate``; ``source`` says which
source a sample came from). Its order is a pure function of (config,
sources, rank, world size), so a resume at any step skips exactly the
consumed batches. Only "train" samples are yielded; ``held_out_set`` gives
the "val" (or "reference") samples.
"""

import logging

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.data import SPLITS, collate
from s2gen.pretrain.sources import open_sources

log = logging.getLogger(__name__)


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate sample dicts, padding ``tokens`` to the widest part with zeros."""
    width = max(p["tokens"].shape[1] for p in parts)
    out = {}
    for key in parts[0]:
        if key == "tokens":
            out[key] = np.concatenate(
                [np.pad(p[key], ((0, 0), (0, width - p[key].shape[1]))) for p in parts]
            )
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


class S2WindowStream(IterableDataset):
    """Endless stream of training batches from the "train" samples of the data sources.

    Parameters
    ----------
    data : a path, or a list of paths and opened sources (``sources.open_sources``).
    cfg : window, crops, batch size, buffer, workers, seed, split and ``use_inputs``.
    rank, world_size : this DDP process and the number of processes.
    start_batch : batches this rank already consumed (skipped on resume).

    Notes
    -----
    Chunk c of the S = sum of the sources' chunks is chunk c - offset_k of
    source k. Stream s = rank * W + role (W = max(num_workers, 1)) of
    world * W streams owns chunks ``order[s::world * W]`` of each epoch's
    shuffled order, and batch b of a rank comes from role b % W. A DataLoader
    takes batches from its workers in turn starting with worker 0, so after a
    resume at batch s0 worker w plays role (w + s0) % W: the resumed loader
    yields batches s0, s0 + 1, ... of the uninterrupted order whatever s0 is.
    Everything random derives from (cfg.seed, epoch, stream).
    """

    def __init__(
        self, data, cfg: PretrainConfig, rank: int = 0, world_size: int = 1, start_batch: int = 0
    ) -> None:
        super().__init__()
        self.sources = open_sources(data, cfg)
        self.cfg = cfg
        self.rank, self.world_size = rank, world_size
        self.start_batch = start_batch
        self.offsets = np.cumsum([0] + [s.n_chunks for s in self.sources])  # (K + 1,)
        self.n_chunks = int(self.offsets[-1])
        workers = max(cfg.num_workers, 1)
        if world_size * workers > self.n_chunks:
            raise ValueError(
                f"{world_size} process(es) x {workers} worker(s) exceed the {self.n_chunks} chunks "
                "of --data; use fewer num_workers, more data or stores with smaller chunk_rows"
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

    def _read(self, chunk: int, epoch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        k = int(np.searchsorted(self.offsets, chunk, side="right")) - 1
        part = self.sources[k].chunk(
            chunk - int(self.offsets[k]), epoch, SPLITS.index("train"), rng
        )
        return {**part, "source": np.full(len(part["row"]), k, np.int64)}

    def _batches(self, stream: int, n_streams: int):
        cfg = self.cfg
        carry: dict[str, np.ndarray] | None = None  # samples left over from the last buffer
        epoch = 0
        while True:
            order = np.random.default_rng([cfg.seed, epoch]).permutation(self.n_chunks)
            mine = order[stream::n_streams]
            produced = 0
            for g in range(0, len(mine), cfg.buffer_chunks):
                rng = np.random.default_rng([cfg.seed, epoch, stream, g])
                group = [self._read(int(c), epoch, rng) for c in mine[g : g + cfg.buffer_chunks]]
                if carry is not None:
                    group.insert(0, carry)
                pool = merge(group)
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
                    f"stream {stream} found no training samples in its chunks of --data "
                    f"({', '.join(s.name for s in self.sources)}); use more data or fewer workers"
                )
            epoch += 1


def make_loader(
    data, cfg: PretrainConfig, rank: int = 0, world_size: int = 1, start_batch: int = 0
) -> DataLoader:
    """DataLoader over ``S2WindowStream`` (batches come ready; ``cfg.num_workers`` workers)."""
    dataset = S2WindowStream(data, cfg, rank, world_size, start_batch)
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        prefetch_factor=4 if cfg.num_workers else None,
    )


def held_out_set(data, cfg: PretrainConfig, split: str = "val", limit: int | None = None):
    """Up to ``limit`` (default ``cfg.val_samples``) held-out samples of the sources, as a batch.

    Windows are centred plain windows (no randomness); a store gives output
    channels with their symbol, rows in store order, a series source its
    series in file order, so the set is the same for every run on the data.
    The sources take turns (one sample each) until ``limit``; when an
    objective reads symbols only sources with symbols take part. Returns the
    batch dict of ``collate`` (possibly smaller), or None if the split is empty.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; choose one of {', '.join(SPLITS)}")
    limit = cfg.val_samples if limit is None else limit
    sources = open_sources(data, cfg)
    parts = []
    for k, source in enumerate(sources):
        if cfg.needs_symbols and not source.has_symbols:
            continue
        part = source.held_out(SPLITS.index(split), limit)
        if part is not None:
            n = len(part["row"])
            parts.append({**part, "source": np.full(n, k, np.int64), "turn": np.arange(n)})
    if not parts:
        log.warning("--data %s has no %s samples", ", ".join(s.name for s in sources), split)
        return None
    merged = merge(parts)
    order = np.lexsort((merged["source"], merged.pop("turn")))[:limit]  # round robin
    return collate({k: v[order] for k, v in merged.items()}, cfg.max_tokens)
