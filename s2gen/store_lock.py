"""One writer per store: a file lock on local stores, a lease object on remote ones.

``writer_lock(path)`` is held for a whole run by the process that writes a
store's records (the driver of ``s2gen generate``; ``write_series``). A second
writer is refused at once, with a message naming the first.

Local stores (a directory; NFS too): ``fcntl.flock`` on the file
``.s2gen-lock`` inside the store. The kernel drops the lock when its holder
exits, even by ``kill -9``, so a crash leaves no stale lock. The holder
removes the file when it is done; a lock taken on a file that was removed in
the meantime is dropped and taken again on the new file (the inode check).

Remote stores (fsspec URLs: S3, GCS, ``memory://``) have no locks and no
rename. There the lock is a lease: the object ``.s2gen-lease`` holds (owner,
host, pid, expiry). A writer takes it when it is absent or expired: it writes
its own lease, waits ``settle`` seconds and reads it back. Object stores keep
the last write and give read-after-write consistency, so of two writers that
raced for a free lease only the later one reads back its own owner id, as long
as each one's read-then-write takes less than ``settle``. A background thread
renews the lease every ``ttl / 4``; before writing each record the holder
checks that its lease is still valid (``check``), so records are only written
under a valid lease. A killed run's lease keeps other writers out until it
expires (``ttl``).
"""

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s2gen.store import (
    PRIVATE_PREFIX,
    StoreError,
    delete_object,
    is_local,
    read_object,
    write_object,
)

LOCK_NAME = f"{PRIVATE_PREFIX}lock"
LEASE_NAME = f"{PRIVATE_PREFIX}lease"
LEASE_TTL = 120.0  # seconds a lease lasts without renewal
LEASE_SETTLE = 2.0  # seconds between writing a lease and reading it back


class StoreBusyError(StoreError):
    """Another process holds the store's writer lock or lease."""


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _busy(path: str, holder: dict | None, note: str = "") -> StoreBusyError:
    who = ""
    if holder and {"pid", "host", "since"} <= set(holder):
        who = f" (pid {holder['pid']} on {holder['host']}, since {_when(holder['since'])})"
    return StoreBusyError(
        f"{path} is being written by another s2gen process{who}; wait for it to finish, or "
        f"stop it, then re-run this command{note}"
    )


class _FileLock:
    """``fcntl.flock`` on ``<store>/.s2gen-lock``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = Path(path, LOCK_NAME)
        self.fd: int | None = None

    def acquire(self) -> None:
        for _ in range(100):  # another holder may remove the file between open and flock
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _parse(os.pread(fd, 4096, 0))
                os.close(fd)
                raise _busy(self.path, holder) from None
            except OSError as exc:
                os.close(fd)
                raise StoreError(
                    f"cannot lock {self.file} ({exc.strerror or exc}); s2gen keeps two writers "
                    "of a store apart with flock, which this file system must support"
                ) from exc
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(_me()).encode(), 0)
                self.fd = fd
                return
            os.close(fd)  # the file we locked was removed: lock the new one
        raise StoreError(f"could not lock {self.file}: it keeps being replaced")

    def check(self) -> None:
        """The kernel keeps the lock while this process lives."""

    def release(self) -> None:
        try:
            self.file.unlink(missing_ok=True)  # before unlocking: see ``acquire``
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


class _Lease:
    """A lease object ``<store>/.s2gen-lease`` for stores without locks."""

    def __init__(self, path: str, ttl: float, settle: float) -> None:
        self.path, self.ttl, self.settle = path, ttl, settle
        self.owner = uuid.uuid4().hex
        self.expires = 0.0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        return _parse(read_object(self.path, LEASE_NAME))

    def _write(self) -> float:
        expires = time.time() + self.ttl
        lease = {**_me(), "owner": self.owner, "expires": expires}
        write_object(self.path, LEASE_NAME, json.dumps(lease).encode())
        return expires

    def acquire(self) -> None:
        held = self._read()
        if held and held.get("owner") != self.owner and held.get("expires", 0) > time.time():
            raise _busy(self.path, held, _expiry_note(held))
        expires = self._write()
        time.sleep(self.settle)
        held = self._read()
        if not held or held.get("owner") != self.owner:
            raise _busy(self.path, held, _expiry_note(held))
        self.expires = expires
        self._thread = threading.Thread(target=self._renew, name="s2gen-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                held = self._read()
                if not held or held.get("owner") != self.owner:
                    self.lost = "another writer replaced it"
                    return
                self.expires = self._write()
            except Exception as exc:  # e.g. the network: retry until the lease runs out
                if time.time() >= self.expires:
                    self.lost = f"it could not be renewed ({exc})"
                    return

    def check(self) -> None:
        """Raise StoreError unless this process still holds a valid lease."""
        if self.lost is None and time.time() >= self.expires - self.settle:
            self.lost = "it expired before it could be renewed"
        if self.lost:
            raise StoreError(
                f"lost the writer lease on {self.path}: {self.lost}; stopped before writing "
                "more records (completed shards are valid); re-run the same command to resume"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        held = self._read()
        if held and held.get("owner") == self.owner:
            delete_object(self.path, LEASE_NAME)


def _parse(data: bytes | None) -> dict | None:
    try:
        value = json.loads(data) if data else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _expiry_note(held: dict | None) -> str:
    if not held or "expires" not in held:
        return ""
    return f" (if it was killed, its lease expires at {_when(held['expires'])})"


@contextmanager
def writer_lock(
    path: str, ttl: float | None = None, settle: float | None = None
) -> Iterator[_FileLock | _Lease]:
    """Hold the store's writer lock (local) or lease (remote) for the ``with`` block.

    Raises StoreBusyError at once if another process holds it. The yielded
    object's ``check()`` raises StoreError if the lease was lost; call it
    before writing each record.
    """
    if is_local(path):
        lock: _FileLock | _Lease = _FileLock(path)
    else:
        lock = _Lease(
            path, LEASE_TTL if ttl is None else ttl, LEASE_SETTLE if settle is None else settle
        )
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
