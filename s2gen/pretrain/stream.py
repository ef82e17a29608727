"""The training stream: chunk-shuffled batches over all data sources, and the held-out set.

``S2WindowStream`` is an endless ``IterableDataset`` over the sources of
``s2gen.pretrain.sources`` (S2 stores, real series): it numbers their chunks
one after the other, shuffles that order per epoch, samples within a buffer
of ``buffer_chunks`` chunks, gives each (DDP rank, DataLoader worker) its own
chunks and yields ready batches (``data.collate``; ``source`` says which
source a sample came from). Its order is a pure function of (config,
sources, rank, world size), so a resume at any step skips exactly the
consumed batches. With ``data_shares`` each source streams on its own and
every batch draws its samples from them by those shares. Only "train"
samples are yielded; ``held_out_set`` gives the "val" (or "reference")
samples, from every source alike.

An endless source (a generator, ``--generate``) streams alone and has no
epochs: each stream reads its chunks in order, each once, and any batch is
found from the chunks' sample counts without generating the ones before it
(``batch_at`` regenerates batch b of a run).
"""

import itertools
import json
import logging
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.data import SPLITS, collate
from s2gen.pretrain.sources import open_sources
from s2gen.threads import pin_threads

log = logging.getLogger(__name__)
LOCATE_CHUNKS = 256  # chunks counted per step when an endless stream looks for a batch
# the first entries of the seeds of a weighted stream's draws: chunk orders, pools, batches
# (a plain stream's seeds start with (cfg.seed, epoch), epochs being far below these)
ORDER_TAG, POOL_TAG, BATCH_TAG = 1 << 40, (1 << 40) + 1, (1 << 40) + 2
EMPTY_EPOCHS = 64  # epochs in a row without a training sample before a source is refused


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
    Everything random derives from (cfg.seed, epoch, stream) (weighted: from
    (cfg.seed, source, epoch, stream) and, per batch, (cfg.seed, stream, i)).

    With ``cfg.data_shares`` (one per source) stream s owns, per source k,
    chunks ``order_k[s::world * W]`` of source k's own shuffled order, so each
    source has its own epochs; batch i of the stream holds a
    multinomial(batch_size, shares) number of samples of each source, drawn
    from (cfg.seed, s, i), shuffled together.

    An endless source (``sources.Source.endless``) must be the only one.
    Stream s then reads its chunks s, s + world * W, s + 2 world * W, ... in
    order, each once, a DataLoader worker generating with one thread; chunk c's
    samples are shuffled with ``default_rng([cfg.seed, c])`` (which also draws
    their windows), and batch i of the stream is samples [i B, (i + 1) B) of
    that sequence (B = batch_size): chunk c gives the same samples for any
    world size or worker count.
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
        self.endless = any(s.endless for s in self.sources)
        workers = max(cfg.num_workers, 1)
        if self.endless and len(self.sources) > 1:
            names = ", ".join(s.name for s in self.sources)
            raise ValueError(
                f"a generated source streams alone ({names}); give either --generate or --data"
            )
        if not self.endless and world_size * workers > self.n_chunks:
            raise ValueError(
                f"{world_size} process(es) x {workers} worker(s) exceed the {self.n_chunks} chunks "
                "of --data; use fewer num_workers, more data or stores with smaller chunk_rows"
            )
        if cfg.data_shares:
            self._check_shares(world_size * workers)

    def _check_shares(self, n_streams: int) -> None:
        shares, names = self.cfg.data_shares, [s.name for s in self.sources]
        if self.endless:
            raise ValueError("data_shares weigh --data sources; --generate streams alone")
        if len(shares) != len(names):
            raise ValueError(
                f"data_shares has {len(shares)} value(s) for {len(names)} --data source(s) "
                f"({', '.join(names)}); give one share per --data, in the order given"
            )
        for share, source in zip(shares, self.sources, strict=True):
            if share > 0 and source.n_chunks < n_streams:
                raise ValueError(
                    f"{source.name} has {source.n_chunks} chunk(s), fewer than the {n_streams} "
                    "streams (processes x workers) that each need one of every weighted "
                    "source; use fewer processes or num_workers, more data in it or a share of 0"
                )

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        role = (worker + self.start_batch) % workers
        stream = self.rank * workers + role
        n_streams = self.world_size * workers
        skip = max(0, -(-(self.start_batch - role) // workers))  # batches role already made
        if self.endless:
            if info is not None:
                pin_threads()  # the generator worker: one core
            yield from self._fresh_batches(stream, n_streams, skip)
            return
        batches = self._finite_batches(stream, n_streams)
        for _ in range(skip):
            next(batches)
        yield from batches

    def _finite_batches(self, stream: int, n_streams: int):
        """The batches of one stream over the finite sources (weighted by ``data_shares``)."""
        if self.cfg.data_shares:
            return self._weighted_batches(stream, n_streams)
        return self._batches(stream, n_streams)

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

    def _source_pools(self, k: int, stream: int, n_streams: int):
        """Shuffled pools (``buffer_chunks`` chunks each) of source k's share of one stream.

        Source k alone, epoch after epoch: its chunks are shuffled per epoch and
        the stream owns every ``n_streams``-th of them, as in ``_batches``.
        """
        cfg, first = self.cfg, int(self.offsets[k])
        epoch, empty = 0, 0  # empty: epochs in a row that gave this stream nothing
        while True:
            order = np.random.default_rng([cfg.seed, ORDER_TAG, k, epoch])
            mine = order.permutation(self.sources[k].n_chunks)[stream::n_streams]
            produced = 0
            for g in range(0, len(mine), cfg.buffer_chunks):
                rng = np.random.default_rng([cfg.seed, POOL_TAG, k, epoch, stream, g])
                chunks = mine[g : g + cfg.buffer_chunks]
                pool = merge([self._read(first + int(c), epoch, rng) for c in chunks])
                perm = rng.permutation(len(pool["row"]))
                produced += len(perm)
                yield {key: v[perm] for key, v in pool.items()}
            empty = 0 if produced else empty + 1
            if empty == EMPTY_EPOCHS:  # a small chunk may hold no training sample in an epoch
                raise ValueError(
                    f"stream {stream} found no training samples in its chunks of "
                    f"{self.sources[k].name} in {EMPTY_EPOCHS} epochs; give it more data, "
                    "fewer processes x workers or a share of 0"
                )
            epoch += 1

    def _weighted_batches(self, stream: int, n_streams: int):
        """Batches whose sources are drawn by ``data_shares``: each source streams on its own.

        Batch i of the stream takes a multinomial(batch_size, shares) count of
        samples from each source (drawn from ``(seed, stream, i)``), in its own
        order, and shuffles them together: every source has its own epochs.
        """
        cfg = self.cfg
        shares = np.asarray(cfg.data_shares, np.float64)
        shares /= shares.sum()
        weighted = [int(k) for k in np.flatnonzero(shares)]
        pools = {k: self._source_pools(k, stream, n_streams) for k in weighted}
        held = {k: next(pools[k]) for k in weighted}  # samples read and not yet batched
        for i in itertools.count():
            rng = np.random.default_rng([cfg.seed, BATCH_TAG, stream, i])
            counts = rng.multinomial(cfg.batch_size, shares)
            parts = []
            for k in weighted:
                while len(held[k]["row"]) < counts[k]:
                    held[k] = merge([held[k], next(pools[k])])
                parts.append({key: v[: counts[k]] for key, v in held[k].items()})
                held[k] = {key: v[counts[k] :] for key, v in held[k].items()}
            batch = merge(parts)
            perm = rng.permutation(cfg.batch_size)
            yield collate({key: v[perm] for key, v in batch.items()}, cfg.max_tokens)

    def _fresh_chunk(self, chunk: int) -> dict[str, np.ndarray]:
        """Training samples of chunk ``chunk`` of the endless source, shuffled."""
        rng = np.random.default_rng([self.cfg.seed, chunk])
        part = self.sources[0].chunk(chunk, 0, SPLITS.index("train"), rng)
        perm = rng.permutation(len(part["row"]))
        return {**{k: v[perm] for k, v in part.items()}, "source": np.zeros(len(perm), np.int64)}

    def _locate(self, stream: int, n_streams: int, sample: int) -> tuple[int, int]:
        """(k, offset): sample ``sample`` of a stream is sample ``offset`` of its k-th chunk."""
        k, before = 0, 0
        while sample > 0:
            ks = np.arange(k, k + LOCATE_CHUNKS)
            counts = self.sources[0].sample_counts(stream + n_streams * ks)
            ends = before + np.cumsum(counts)  # samples up to the end of each chunk
            j = int(np.searchsorted(ends, sample, side="right"))  # the chunk that holds it
            if j < len(ks):
                return k + j, sample - int(ends[j] - counts[j])
            k, before = k + LOCATE_CHUNKS, int(ends[-1])
        return 0, 0  # the stream's first sample

    def _fresh_batches(self, stream: int, n_streams: int, first: int):
        """Batches ``first``, ``first + 1``, ... of one stream of an endless source."""
        size = self.cfg.batch_size
        k, offset = self._locate(stream, n_streams, first * size)
        pool: dict[str, np.ndarray] | None = None
        while True:
            part = self._fresh_chunk(stream + k * n_streams)
            part = {key: v[offset:] for key, v in part.items()}
            pool = part if pool is None else merge([pool, part])
            k, offset = k + 1, 0
            n_full = len(pool["row"]) // size
            for i in range(n_full):
                batch = slice(i * size, (i + 1) * size)
                yield collate({key: v[batch] for key, v in pool.items()}, self.cfg.max_tokens)
            pool = {key: v[n_full * size :] for key, v in pool.items()}

    def batch_at(self, b: int) -> dict:
        """Batch ``b`` of this rank (the one step b trains on), made again."""
        workers = max(self.cfg.num_workers, 1)
        stream, n_streams = self.rank * workers + b % workers, self.world_size * workers
        if self.endless:
            return next(self._fresh_batches(stream, n_streams, b // workers))
        batches = self._finite_batches(stream, n_streams)
        for _ in range(b // workers):
            next(batches)
        return next(batches)


def make_loader(
    data, cfg: PretrainConfig, rank: int = 0, world_size: int = 1, start_batch: int = 0
) -> DataLoader:
    """DataLoader over ``S2WindowStream`` (batches come ready; ``cfg.num_workers`` workers).

    Workers of a generated stream are spawned, not forked: a process that
    already ran the generator's parallel kernels (GNU OpenMP) cannot fork one
    that runs them again.
    """
    dataset = S2WindowStream(data, cfg, rank, world_size, start_batch)
    spawn = dataset.endless and cfg.num_workers > 0
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        prefetch_factor=4 if cfg.num_workers else None,
        multiprocessing_context="spawn" if spawn else None,
    )


def batch_at(run_dir, b: int, rank: int = 0) -> dict:
    """Batch ``b`` (0-based) of rank ``rank`` of a pretraining run, made again exactly.

    The batch as the loader gave it to step b, before any ``batch_hook``. A
    ``--generate`` run regenerates it from ``run.json`` (the generation
    config) and ``config.json`` at the cost of one batch; a run on stored
    data reads again the batches of the stream before it (the ``--data``
    paths of ``run.json`` must still hold the data).
    """
    from s2gen.pretrain.generated import GeneratorSource

    run_dir = Path(run_dir)
    cfg = PretrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    record = json.loads((run_dir / "run.json").read_text())
    world = int(record["world_size"])
    if not 0 <= rank < world:
        raise ValueError(f"rank={rank} is invalid: the run had {world} process(es)")
    if b < 0:
        raise ValueError(f"b={b} is invalid: batches are numbered from 0")
    if "generate" in record:
        data = [GeneratorSource.from_record(record["generate"], cfg)]
    else:
        data = record["data"]
    return S2WindowStream(data, cfg, rank, world).batch_at(b)


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
