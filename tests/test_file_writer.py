"""Atomic shard-object writes with background write-back."""

import errno
import os
import signal
import time

import numpy as np
import pytest

from s2gen import file_writer
from s2gen.file_writer import wait_for_write_back, write_atomically


def test_parts_land_in_order_and_no_partial_file_remains(tmp_path):
    target = tmp_path / "x" / "c" / "0"
    parts = [b"head", memoryview(np.arange(5, dtype="<u4")), bytearray(b"tail")]
    write_atomically(target, parts)
    wait_for_write_back()
    assert target.read_bytes() == b"head" + np.arange(5, dtype="<u4").tobytes() + b"tail"
    assert [p.name for p in target.parent.iterdir()] == ["0"]


def test_a_failed_write_keeps_the_old_object_and_removes_the_partial_file(tmp_path):
    target = tmp_path / "0"
    write_atomically(target, [b"old"])

    released = memoryview(b"new")
    released.release()  # writing it raises, after the first part is in the file
    with pytest.raises(ValueError, match="released"):
        write_atomically(target, [b"new", released])
    wait_for_write_back()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["0"]


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no write-back off Linux")
def test_a_write_back_error_is_raised_by_the_next_wait(tmp_path, monkeypatch):
    def failing_sync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(file_writer.os, "fdatasync", failing_sync)
    write_atomically(tmp_path / "0", [b"data"])
    with pytest.raises(OSError, match="Input/output"):
        wait_for_write_back()
    wait_for_write_back()  # reported once
    assert (tmp_path / "0").read_bytes() == b"data"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_writes_with_its_own_background_thread(tmp_path):
    write_atomically(tmp_path / "parent", [b"p"])  # the parent's thread exists now
    wait_for_write_back()
    pid = os.fork()
    if pid == 0:  # child: would hang on the parent's thread without the at-fork reset
        try:
            write_atomically(tmp_path / "child", [b"c"])
            wait_for_write_back()
        finally:
            os._exit(0 if (tmp_path / "child").read_bytes() == b"c" else 1)
    deadline = time.monotonic() + 30
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if status[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's write-back never ran")
    assert os.waitstatus_to_exitcode(status[1]) == 0
