"""Atomic writes of shard objects to a local store, kept out of the page cache.

A store is written once and read later, so its pages are not worth keeping in
the page cache. On the project machine (a VM), a writer whose cache pages are
recycled spends about a fifth of the system time of one that keeps taking new
pages (16 MB: 4-6 ms against 19-37 ms; benchmarks/BENCHMARKS.md, issue 3).
So each file, once renamed into place, is written back and dropped from the
cache by one background thread while the caller goes on generating.
"""

import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

_pending: list[Future] = []  # write-backs started by this process


def write_atomically(target: Path, parts: list) -> None:
    """Write the bytes-like ``parts`` one after the other to ``target``, atomically.

    They go to a ``.partial`` file beside ``target`` that is renamed into place
    (a reader sees the old object or the whole new one); on any error the
    partial file is removed. Write-back and the cache drop follow in the
    background; ``wait_for_write_back`` waits for them.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.partial")
    fd = None  # kept open for the write-back
    try:
        with partial.open("wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            if hasattr(os, "posix_fadvise"):
                fd = os.dup(f.fileno())
        os.replace(partial, target)
    except BaseException:
        if fd is not None:
            os.close(fd)
        partial.unlink(missing_ok=True)
        raise
    if fd is not None:  # Linux; elsewhere the page cache keeps the pages
        _pending.append(_background().submit(_write_back_and_drop, fd))


def wait_for_write_back() -> None:
    """Wait for this process's background write-backs; raise the first I/O error."""
    while _pending:
        _pending.pop(0).result()


@cache
def _background() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2gen-write-back")


def _forget_parent_threads() -> None:  # a forked child has none of the parent's threads
    _pending.clear()
    _background.cache_clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_threads)


def _write_back_and_drop(fd: int) -> None:
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
