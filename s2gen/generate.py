"""Fill a store with generated pairs: plan, run shard tasks, resume, report.

``generate_store`` is what ``s2gen generate`` calls. The unit of work is a
shard: ``run_shard`` generates its rows from their seeds and writes them
(``s2gen.store.write_shard``). Shards run in local worker processes or as
tasks on a Dask cluster (the same function); a store is identical for any
worker count, scheduler, shard size or resume point.

The driver (the process that runs ``generate_store``) holds the store's
writer lock (``s2gen.store_lock``) and is the only writer of records: a shard
task writes its objects and returns their sizes and checksums, and the driver
records and commits them. On an existing store the driver first checks every
committed shard against its records (sizes; checksums too with ``verify``)
and regenerates the damaged ones.
"""

import errno
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from s2gen import store
from s2gen.config import GenerateConfig, StoreConfig, config_differences
from s2gen.file_writer import wait_for_write_back
from s2gen.generators.pairs import generate_batch, token_length
from s2gen.kernels.pairs import STAT_NAMES
from s2gen.kernels.seeds import row_seeds
from s2gen.memory import check_generation, workers_that_fit
from s2gen.store_lock import writer_lock
from s2gen.threads import one_numba_thread, pin_threads

log = logging.getLogger(__name__)
PREFLIGHT_ROWS = 8  # rows generated before anything is written: a config that always fails


class DiskFullError(OSError):
    """The disk, a quota or a file-size limit ran out; completed shards are valid."""


_NO_ROOM = {  # errno: (what happened, the fix)
    errno.ENOSPC: ("disk full", "free space"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota"),
    errno.EFBIG: (
        "file too large (a file-size limit, `ulimit -f`, or the file system's largest file)",
        "raise the limit or write to a file system that takes larger files",
    ),
}


def _no_room(exc: OSError, path: str, done: int | None) -> DiskFullError | None:
    """A DiskFullError with the message for ``exc`` (None if it is another error).

    ``done`` is the number of complete shards, or None while the store is set up.
    """
    if exc.errno not in _NO_ROOM:
        return None
    what, fix = _NO_ROOM[exc.errno]
    if done is None:
        message = (
            f"{what} while setting up {path}: this run wrote no pairs; {fix} and re-run the "
            "same command (a store whose creation did not finish is created again)"
        )
    else:
        message = (
            f"{what} while writing {path}: {done} complete shards are valid and the partial "
            f"shard was removed; {fix} and re-run the same command to resume"
        )
    return DiskFullError(exc.errno, message)


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
    repaired: list[store.Damage] = field(default_factory=list)  # found and regenerated
    checked: int = 0  # format-1 shards checked against a regeneration (upgrade)
    rewritten: int = 0  # objects of those shards that differed and were rewritten

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
        repairs = ""
        if self.repaired:
            shards = sorted({d.shard for d in self.repaired})
            repairs = f"; regenerated damaged shard(s) {', '.join(map(str, shards))}"
        if self.checked:
            repairs += (
                f"; checked {self.checked} format-1 shards against a regeneration "
                f"({self.rewritten} objects differed and were rewritten) and recorded their "
                "checksums: the store is now format 2"
            )
        return (
            f"{self.rows:,} pairs in {self.path} ({self.rows_new:,} new in {self.seconds:.1f} s"
            f"{compiled}, {self.rate:,.0f} pairs/s), acceptance {self.acceptance_rate:.1%} of "
            f"excitation draws{size}{repairs}"
        )


@dataclass(frozen=True)
class ShardDone:
    """What a shard task reports to the driver, which records and commits it."""

    k: int
    rows: int
    stats: dict[str, int]
    records: dict[str, tuple[int, int]]  # array -> (object size, CRC-32C)
    rewritten: tuple[str, ...]  # arrays whose objects were written
    check: bool  # the task checked existing objects against a regeneration


def run_shard(
    path: str,
    k: int,
    config_dict: dict,
    n: int,
    shard_rows: int,
    pin: bool = True,
    check: bool = False,
) -> ShardDone:
    """Generate shard k of the store at ``path`` and write its objects; the worker task.

    With ``check``, existing objects are compared with the regenerated bytes
    and only those that differ are written. Does not commit (the driver
    does). A pure function of its arguments and the store's layout, so it can
    run anywhere, in any order, any number of times.
    """
    if pin:
        pin_threads()
    config = GenerateConfig.from_dict(config_dict)
    start, stop = store.shard_rows_range(k, n, shard_rows)
    batch = generate_batch(config, row_seeds(config.seed, start, stop))
    columns = store.batch_columns(batch, token_length(config))
    records, written = store.write_shard_objects(path, k, columns, only_changed=check)
    return ShardDone(k, stop - start, batch.stat_totals(), records, tuple(written), check)


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
    try:
        header = store.read_header(path)
    except store.UnfinishedStoreError:  # a creation that did not finish is made again
        header = None
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
    verify: bool = False,
) -> tuple[StoreConfig, bool]:
    """Create, resume or extend the store at ``path``; return its layout and whether it
    is a format-1 store to upgrade (its committed shards are then checked by regeneration).

    ``store_options`` holds only the layout settings the user gave; on an
    existing store the others come from the store. Raises StoreError when
    the store exists with another config or layout (unless ``overwrite``),
    when ``n`` is smaller than the store, or for a format-1 store without
    ``verify``. The caller holds the writer lock.
    """
    _check_count(n)
    store_options = dict(store_options or {})
    try:
        header = store.read_header(path)
    except store.UnfinishedStoreError:
        header = None  # created again below
    if header is None or overwrite:
        store_config = StoreConfig(**store_options)
        store.create(path, config, store_config, n)
        return store_config, False
    stored = store.header_config(path, header)
    if stored != config:
        raise store.StoreError(
            f"{path} holds a store made with another config ("
            + "; ".join(config_differences(stored, config))
            + f"){_old_default_hint(stored, config)}; pass --overwrite to replace it, or "
            "choose another --out"
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
    upgrade = header["format_version"] < store.FORMAT_VERSION
    if upgrade and not verify:
        raise store.StoreError(
            f"{path} is in store format {header['format_version']}, which records no checksums "
            "of its shards; re-run this command with --verify to check every shard against a "
            "regeneration, record the checksums and upgrade it to format "
            f"{store.FORMAT_VERSION} (or pass --overwrite to write it again)"
        )
    if upgrade:
        store.add_object_records(path)
    if n > rows:
        last = store.shard_count(rows, store_config.shard_rows) - 1
        if rows % store_config.shard_rows:
            store.drop_shard(path, last)  # its rows range grows: rewrite it whole
        store.resize(path, n)
    return store_config, upgrade


def _old_default_hint(stored: GenerateConfig, asked: GenerateConfig) -> str:
    """How to resume a store of the paper's mix, the default before SARIMA pairs."""
    if stored.sampler_weights == () and asked.sampler_weights != () and not stored.graph:
        return " (the paper's mix, s2gen 0.1's default: add --sampler-preset paper)"
    return ""


def find_damage(path: str, verify: bool, upgrade: bool) -> list[store.Damage]:
    """Check the committed shards against their records and forget the damaged ones.

    Sizes always, CRC-32C with ``verify``. In a format-1 store being upgraded
    only the shards that already have records (from an earlier, interrupted
    ``--verify`` run) are checked here, by checksum; the others are checked
    by regeneration.
    """
    if upgrade:
        recorded = store.object_records(path)
        shards = [k for k in store.shard_records(path) if (recorded[k] >= 0).all()]
        damages = store.check_shards(path, hashes=True, shards=shards)
    else:
        damages = store.check_shards(path, hashes=verify)
    for k in sorted({d.shard for d in damages}):
        store.drop_shard(path, k)
    for damage in damages:
        log.warning("%s: %s; regenerating the shard", path, damage)
    return damages


def _local_executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=pin_threads,
    )


def _run_tasks(submit: Callable, todo: list, window: int) -> Iterator[ShardDone]:
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
    verify: bool = False,
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
    verify : compare every committed shard's CRC-32C with its record (not
        only its size) and regenerate the damaged ones; on a format-1 store,
        check every shard against a regeneration and upgrade it to format 2.

    Raises
    ------
    StoreError, ValueError : bad input (nothing is written).
    StoreBusyError : another process is writing the store (nothing is written).
    NotEnoughMemory : shards too large for the codecs or the memory (nothing is written).
    GenerationError : the first rows find no accepted pair (nothing is written).
    DiskFullError : the disk, a quota or a file-size limit ran out; completed
        shards stay valid.
    Interrupted : Ctrl-C; completed shards stay valid.
    """
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
    store.check_output_path(path)
    try:
        store.read_header(path)  # refuses foreign data before a lock file is put into it
    except store.UnfinishedStoreError:
        pass
    with ExitStack() as stack:
        try:
            lock = stack.enter_context(writer_lock(path))
            store_config, upgrade = prepare(path, config, n, store_options, overwrite, verify)
            store.clean_partial_files(path)
            repaired = find_damage(path, verify, upgrade)
        except OSError as exc:
            no_room = _no_room(exc, path, None)
            if no_room is None:
                raise
            raise no_room from exc
        summary = _fill(path, config, n, store_config, upgrade, lock, workers, scheduler, progress)
    summary.warm_up_seconds = warm_seconds
    summary.seconds = time.perf_counter() - t0
    summary.repaired = repaired
    return summary


def _fill(path, config, n, store_config, upgrade, lock, workers, scheduler, progress):
    """Run the shard tasks the store lacks (and, in an upgrade, the checks); commit each."""
    from tqdm import tqdm

    records = store.shard_records(path)
    tasks = [(k, False) for k in range(store.shard_count(n, store_config.shard_rows))]
    tasks = [task for task in tasks if task[0] not in records]
    if upgrade:
        recorded = store.object_records(path)
        tasks += [(k, True) for k in sorted(records) if (recorded[k] < 0).any()]
    checking = {k for k, check in tasks if check}
    rows_done = sum(r["accepted"] for k, r in records.items() if k not in checking)
    args = (config.to_dict(), n, store_config.shard_rows)
    bar = tqdm(
        total=n,
        initial=rows_done,
        unit="pair",
        unit_scale=True,
        disable=not progress,
        desc="generating",
        smoothing=0.05,
    )
    committer = store.ShardCommitter(path)
    rows_new = checked = rewritten = 0
    executor = client = None
    try:
        if scheduler:
            client = _dask_client(scheduler)
            submit = lambda task: _as_concurrent(
                client.submit(run_shard, path, task[0], *args, check=task[1], pure=False)
            )
            window = 4 * max(1, len(client.scheduler_info()["workers"]))
        elif workers == 1:
            submit = lambda task: _completed(
                run_shard, path, task[0], *args, pin=False, check=task[1]
            )
            window = 1
        else:
            executor = _local_executor(workers)
            submit = lambda task: executor.submit(run_shard, path, task[0], *args, check=task[1])
            window = 2 * workers
        with one_numba_thread(enabled=workers == 1 and not scheduler):
            for done in _run_tasks(submit, tasks, window):
                lock.check()
                committer.commit(done.k, done.stats, done.records)
                if done.check:
                    checked += 1
                    rewritten += len(done.rewritten)
                else:
                    rows_new += done.rows
                bar.update(done.rows)
    except KeyboardInterrupt as exc:
        _stop(executor, client, path)
        raise Interrupted(
            f"interrupted: {len(store.shard_records(path))} shards of {path} are complete; "
            "re-run the same command to resume"
        ) from exc
    except OSError as exc:
        _stop(executor, client, path)
        no_room = _no_room(exc, path, len(store.shard_records(path)))
        if no_room is None:
            raise
        raise no_room from exc
    except BaseException:
        _stop(executor, client, path)
        raise
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown()
        if client is not None:
            client.close()
    wait_for_write_back()  # shards written in this process
    if upgrade:
        store.finish_upgrade(path)
    totals = _total_stats(store.shard_records(path))
    store.update_header(path, rows_written=n, acceptance=totals)
    return GenerateSummary(
        path,
        n,
        rows_new,
        0.0,
        totals,
        store.size_on_disk(path),
        checked=checked,
        rewritten=rewritten,
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
