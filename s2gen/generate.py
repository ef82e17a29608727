"""Fill a store with generated pairs: plan, run shard tasks, resume, report.

``generate_store`` is what ``s2gen generate`` calls. The unit of work is a
shard: ``run_shard`` generates its rows from their seeds and writes them
(``s2gen.store.write_shard``). Shards run in local worker processes or as
tasks on a Dask cluster (the same function); a store is identical for any
worker count, scheduler, shard size or resume point.
"""

import errno
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from s2gen import store
from s2gen.config import GenerateConfig, StoreConfig, config_differences
from s2gen.file_writer import wait_for_write_back
from s2gen.generators.pairs import generate_batch, token_length
from s2gen.kernels.pairs import STAT_NAMES
from s2gen.kernels.seeds import row_seeds
from s2gen.memory import check_generation, workers_that_fit
from s2gen.threads import one_numba_thread, pin_threads

PREFLIGHT_ROWS = 8  # rows generated before anything is written: a config that always fails


class DiskFullError(OSError):
    """The disk filled up; completed shards are valid and the run can resume."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the run stopped cleanly and can resume."""


@dataclass
class GenerateSummary:
    """What a generation run did."""

    path: str
    rows: int
    rows_new: int
    seconds: float
    acceptance: dict[str, int] = field(default_factory=dict)
    bytes_on_disk: int | None = None
    warm_up_seconds: float = 0.0

    @property
    def rate(self) -> float:
        """New pairs per second of this run, not counting the kernels' warm-up."""
        seconds = self.seconds - self.warm_up_seconds
        return self.rows_new / seconds if seconds > 0 else 0.0

    @property
    def acceptance_rate(self) -> float:
        """Accepted pairs per excitation draw, over the whole store."""
        draws = self.acceptance.get("excitation_draws", 0)
        return self.acceptance.get("accepted", 0) / draws if draws else 0.0

    def line(self) -> str:
        """One-line summary for the CLI."""
        size = "" if self.bytes_on_disk is None else f", {self.bytes_on_disk / 1e9:.2f} GB on disk"
        compiled = (
            f", of which {self.warm_up_seconds:.1f} s compiling the kernels (once)"
            if self.warm_up_seconds > 5
            else ""
        )
        return (
            f"{self.rows:,} pairs in {self.path} ({self.rows_new:,} new in {self.seconds:.1f} s"
            f"{compiled}, {self.rate:,.0f} pairs/s), acceptance {self.acceptance_rate:.1%} of "
            f"excitation draws{size}"
        )


def run_shard(
    path: str, k: int, config_dict: dict, n: int, shard_rows: int, pin: bool = True
) -> tuple[int, int, dict[str, int]]:
    """Generate and write shard k of the store at ``path``; the task of every worker.

    Returns ``(k, rows, acceptance counters)``. A pure function of its
    arguments and the store's layout, so it can run anywhere, in any order,
    any number of times.
    """
    if pin:
        pin_threads()
    config = GenerateConfig.from_dict(config_dict)
    start, stop = store.shard_rows_range(k, n, shard_rows)
    batch = generate_batch(config, row_seeds(config.seed, start, stop))
    stats = batch.stat_totals()
    store.write_shard(path, k, batch, token_length(config), stats)
    return k, stop - start, stats


def warm_up(config: GenerateConfig) -> None:
    """Compile (first run) or load (later runs) every kernel a shard task uses.

    Done once in the driver so that worker processes find the Numba cache
    warm instead of each compiling the same kernels.
    """
    batch = generate_batch(config, row_seeds(config.seed, 0, 1))
    batch.expressions()
    batch.tokens(token_length(config))


def preflight(config: GenerateConfig, n: int) -> None:
    """Generate the store's first ``min(n, PREFLIGHT_ROWS)`` rows and drop them.

    A config (or given expression) that no excitation passes raises
    ``GenerationError`` here, saying why, before a store exists. Row 0 is
    also the warm-up's, so this follows ``warm_up``.
    """
    generate_batch(config, row_seeds(config.seed, 0, min(n, PREFLIGHT_ROWS)))


def _check_count(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n={n!r} is invalid: the number of pairs must be a positive integer")


def planned_layout(path: str, store_options: dict | None, overwrite: bool) -> StoreConfig:
    """The layout a run will write: the existing store's (unless ``overwrite``), else the options'.

    Reads only; ``prepare`` later refuses options that differ from a store's,
    and an output path that is a file.
    """
    if "://" not in str(path) and Path(path).is_file():
        return StoreConfig(**(store_options or {}))
    header = store.read_header(path)
    if header is None or overwrite:
        return StoreConfig(**(store_options or {}))
    return StoreConfig.from_dict(header["store"])


def _total_stats(records: dict[int, dict[str, int]]) -> dict[str, int]:
    return {name: sum(r[name] for r in records.values()) for name in STAT_NAMES}


def prepare(
    path: str,
    config: GenerateConfig,
    n: int,
    store_options: dict | None = None,
    overwrite: bool = False,
) -> StoreConfig:
    """Create, resume or extend the store at ``path``; return its layout.

    ``store_options`` holds only the layout settings the user gave; on an
    existing store the others come from the store. Raises StoreError when
    the store exists with another config or layout (unless ``overwrite``),
    or when ``n`` is smaller than the store.
    """
    _check_count(n)
    store_options = dict(store_options or {})
    store.check_output_path(path)
    header = store.read_header(path)
    if header is not None and overwrite:
        store.remove(path)
        header = None
    if header is None:
        store_config = StoreConfig(**store_options)
        store.create(path, config, store_config, n)
        return store_config
    stored = GenerateConfig.from_dict(header["config"])
    if stored != config:
        raise store.StoreError(
            f"{path} holds a store made with another config ("
            + "; ".join(config_differences(stored, config))
            + "); pass --overwrite to replace it, or choose another --out"
        )
    store_config = StoreConfig.from_dict(header["store"])
    asked = StoreConfig(**{**store_config.to_dict(), **store_options})
    if asked != store_config:
        raise store.StoreError(
            f"{path} has another layout ("
            + "; ".join(config_differences(store_config, asked))
            + "); omit those options to resume, or pass --overwrite"
        )
    rows = int(header["rows"])
    if n < rows:
        raise store.StoreError(
            f"{path} already has {rows:,} rows and --n is {n:,}; s2gen does not shrink a store "
            "(pass --overwrite to rewrite it with fewer rows)"
        )
    if n > rows:
        last = store.shard_count(rows, store_config.shard_rows) - 1
        if rows % store_config.shard_rows:
            store.drop_shard(path, last)  # its rows range grows: rewrite it whole
        store.resize(path, n)
    return store_config


def _local_executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=pin_threads,
    )


def _run_tasks(submit: Callable, todo: list[int], window: int) -> Iterator[tuple[int, int, dict]]:
    """Submit shard tasks with at most ``window`` in flight; yield results as they finish."""
    pending: set[Future] = set()
    queue = list(reversed(todo))
    while queue or pending:
        while queue and len(pending) < window:
            pending.add(submit(queue.pop()))
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            yield future.result()


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def generate_store(
    path: str,
    config: GenerateConfig,
    n: int,
    store_options: dict | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> GenerateSummary:
    """Create or finish a store of ``n`` pairs at ``path``.

    Parameters
    ----------
    path : local directory (or a URL zarr can open) of the store.
    config : the generation config (must match an existing store's).
    n : rows the store must have; larger than an existing store extends it.
    store_options : layout settings the user gave (see ``StoreConfig``).
    workers : local worker processes (default: all cores, fewer if their shards would not
        fit in the available memory); 1 runs in-process.
    scheduler : address of a Dask distributed scheduler ("tcp://host:8786");
        shard tasks then run on its workers, which must reach ``path``.
    overwrite : replace an existing store of another config.
    progress : show a tqdm bar.

    Raises
    ------
    StoreError, ValueError : bad input (nothing is written).
    NotEnoughMemory : shards too large for the codecs or the memory (nothing is written).
    GenerationError : the first rows find no accepted pair (nothing is written).
    DiskFullError : the disk filled; completed shards stay valid.
    Interrupted : Ctrl-C; completed shards stay valid.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    _check_count(n)
    layout = planned_layout(path, store_options, overwrite)
    if workers is None:  # every core, as far as the memory holds their shards
        workers = workers_that_fit(config, layout.shard_rows, default_workers())
    if workers < 1:
        raise ValueError(f"workers={workers} is invalid: use at least 1")
    check_generation(config, layout, None if scheduler else workers)
    warm_started = time.perf_counter()
    warm_up(config)
    warm_seconds = time.perf_counter() - warm_started
    preflight(config, n)
    store_config = prepare(path, config, n, store_options, overwrite)
    store.clean_partial_files(path)
    records = store.shard_records(path)
    todo = [k for k in range(store.shard_count(n, store_config.shard_rows)) if k not in records]
    rows_done = sum(r["accepted"] for r in records.values())
    args = (path, config.to_dict(), n, store_config.shard_rows)
    bar = tqdm(
        total=n,
        initial=rows_done,
        unit="pair",
        unit_scale=True,
        disable=not progress,
        desc="generating",
        smoothing=0.05,
    )
    rows_new = 0
    executor = client = None
    try:
        if scheduler:
            client = _dask_client(scheduler)
            submit = lambda k: _as_concurrent(
                client.submit(run_shard, args[0], k, *args[1:], pure=False)
            )
            window = 4 * max(1, len(client.scheduler_info()["workers"]))
        elif workers == 1:
            submit = lambda k: _completed(run_shard, args[0], k, *args[1:], pin=False)
            window = 1
        else:
            executor = _local_executor(workers)
            submit = lambda k: executor.submit(run_shard, args[0], k, *args[1:])
            window = 2 * workers
        with one_numba_thread(enabled=workers == 1 and not scheduler):
            for _, rows, _ in _run_tasks(submit, todo, window):
                rows_new += rows
                bar.update(rows)
    except KeyboardInterrupt as exc:
        _stop(executor, client, path)
        raise Interrupted(
            f"interrupted: {len(store.shard_records(path))} shards of {path} are complete; "
            "re-run the same command to resume"
        ) from exc
    except OSError as exc:
        _stop(executor, client, path)
        if exc.errno != errno.ENOSPC:
            raise
        done = len(store.shard_records(path))
        raise DiskFullError(
            errno.ENOSPC,
            f"disk full while writing {path}: {done} complete shards are valid and the partial "
            "shard was removed; free space and re-run the same command to resume",
        ) from exc
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown()
        if client is not None:
            client.close()
    wait_for_write_back()  # shards written in this process
    records = store.shard_records(path)
    totals = _total_stats(records)
    store.update_header(path, rows_written=n, acceptance=totals)
    return GenerateSummary(
        path, n, rows_new, time.perf_counter() - t0, totals, store.size_on_disk(path), warm_seconds
    )


def _completed(fn, *args, **kwargs) -> Future:
    """Run ``fn`` now and wrap the outcome in a finished Future (the 1-worker path)."""
    future: Future = Future()
    try:
        future.set_result(fn(*args, **kwargs))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _as_concurrent(dask_future) -> Future:
    """A concurrent.futures Future that follows a Dask future."""
    future: Future = Future()

    def done(finished) -> None:  # Dask runs this in a separate thread
        try:
            future.set_result(finished.result())
        except BaseException as exc:
            future.set_exception(exc)

    dask_future.add_done_callback(done)
    return future


def _stop(executor, client, path: str) -> None:
    """Stop workers without waiting for their shards, then remove partial files."""
    if executor is not None:
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)
    if client is not None:
        client.close()
    store.clean_partial_files(path)


def _dask_client(address: str):
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise ImportError("--scheduler needs Dask distributed: pip install 's2gen[dask]'") from exc
    return Client(address)
