"""Stores that cannot lie: damage found, named and repaired to the clean bytes; guarded reads;
one writer at a time; creation that survives a full disk or a kill; format-1 stores."""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen import store_lock
from s2gen.cli import main

TINY = ["--length", "32", "--chunk-rows", "32", "--shard-rows", "64", "--quiet", "--workers", "1"]
N = 200  # shards 0-2 of 64 rows and a short shard 3 of 8 rows
DATA = Path(__file__).parent / "data"


def run(*args, expect=0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def generate(path, *extra, expect=0):
    return run("generate", "--n", N, "--out", path, *TINY, *extra, expect=expect)


def all_files(path) -> dict[str, bytes]:
    """Every file of a local store, by relative path."""
    root = Path(path)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def object_file(path, name: str, k: int) -> Path:
    array = zarr.open_group(str(path), mode="r")[name]
    return Path(
        path, name, *array.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1)).split("/")
    )


def damage(path, name: str, k: int, how: str) -> None:
    """Truncate, delete, or flip one byte of (data or index of) shard k's object of ``name``."""
    target = object_file(path, name, k)
    data = bytearray(target.read_bytes())
    if how == "delete":
        target.unlink()
        return
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        data[len(data) // 3] ^= 0x10  # inside the compressed chunks: sizes stay equal
    elif how == "flip_index":
        data[-10] ^= 0x01  # inside the shard index: zarr's own CRC-32C fails on read
    target.write_bytes(bytes(data))


def copy_of(clean, tmp_path, name="s.zarr") -> Path:
    path = tmp_path / name
    shutil.copytree(clean, path)
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean") / "clean.zarr"
    generate(path)
    return path


def test_a_clean_store_leaves_no_lock_marker_or_partial_file(clean):
    assert not [f for f in all_files(clean) if ".s2gen-" in f or f.endswith(".partial")]
    result = run("validate", clean, "--sample", 0)
    assert "OK: 200 rows and 4 shards" in result.output


@pytest.mark.parametrize(
    "how,name,k",
    [("truncate", "y", 1), ("delete", "tokens", 3), ("flip", "x", 2), ("truncate", "expr", 0)],
)
def test_damage_is_named_by_validate_and_repaired_to_the_clean_bytes(clean, tmp_path, how, name, k):
    path = copy_of(clean, tmp_path)
    damage(path, name, k, how)
    result = run("validate", path, "--sample", 10, expect=1)
    named = [line for line in result.output.splitlines() if line.startswith("store: shard")]
    assert len(named) == 1 and named[0].startswith(f"store: shard {k}, array {name}: object")
    if name == "tokens":  # info counts operators from the tokens: it cannot read them
        assert f"array tokens, shard {k}" in run("info", path, expect=1).output
    else:
        facts = json.loads(run("info", path, "--json").output)
        assert facts["damaged_shards"] == ([] if how == "flip" else [k])  # sizes only
    if how == "flip":  # same size: a plain resume does not read the bytes, --verify does
        assert "regenerated" not in generate(path).output
        run("validate", path, "--sample", 10, expect=1)
        result = generate(path, "--verify")
    else:
        result = generate(path)
    assert f"regenerated damaged shard(s) {k}" in result.output
    assert all_files(path) == all_files(clean)
    assert "OK" in run("validate", path, "--sample", 10).output


def test_damaged_records_count_as_damaged_shards_and_are_rewritten(clean, tmp_path):
    path = copy_of(clean, tmp_path)
    commit = Path(path, s2store.COMMITS, "c", "1", "0")
    commit.write_bytes(commit.read_bytes()[:20])  # shard 1's commit no longer decodes
    Path(path, s2store.OBJECTS, "c", "2", "0", "0").unlink()  # shard 2 loses its records
    result = run("validate", path, "--sample", 10, expect=1)
    assert "shard 1 is not committed" in result.output
    assert "store: shard 2: no sizes and checksums recorded for its objects\n" in result.output
    result = generate(path)
    assert "128 new" in result.output and "regenerated damaged shard(s) 2" in result.output
    assert all_files(path) == all_files(clean)


def test_object_records_that_do_not_describe_the_arrays_are_refused_by_name(clean, tmp_path):
    path = copy_of(clean, tmp_path)
    group = zarr.open_group(str(path), mode="r+")
    header = dict(group.attrs["s2gen"])
    header["objects"] = {**header["objects"], "arrays": header["objects"]["arrays"][:-1]}
    group.attrs["s2gen"] = header  # an edited header: one array fewer than the store has
    with pytest.raises(s2store.StoreError, match="object records list arrays"):
        s2store.open(str(path))
    result = run("validate", path, expect=1)
    assert "object records list arrays" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("how", ["truncate", "delete", "flip_index"])
def test_a_read_of_a_damaged_shard_raises_naming_store_array_and_shard(clean, tmp_path, how):
    path = copy_of(clean, tmp_path)
    damage(path, "y", 1, how)
    view = s2store.open(str(path))
    assert np.array_equal(view.read(0, 64)["y"], s2store.open(str(clean)).read(0, 64)["y"])
    message = rf"cannot read {path}: array y, shard 1 \(rows 64-127\): object y/c/1/0/0"
    with pytest.raises(s2store.StoreError, match=message):
        view.read(60, 70, ["y", "x"])
    with pytest.raises(s2store.StoreError, match=message):
        view[100]
    result = run("show", path, 100, expect=1)
    assert "array y, shard 1" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def training_store(tmp_path_factory):
    """1024 rows of L = 64 in 4 shards: a pretraining-sized tiny store."""
    path = tmp_path_factory.mktemp("train") / "train.zarr"
    args = ["generate", "--n", 1024, "--out", path, "--length", 64, "--max-output-dim", 2]
    run(*args, "--chunk-rows", 128, "--shard-rows", 256, "--workers", 1, "--quiet")
    return path


def test_training_and_oats_reads_of_a_store_missing_an_object_stop_with_its_name(
    training_store, tmp_path
):
    import torch

    from s2gen.oats.cli import oats
    from s2gen.oats.data import load_series, store_subset
    from s2gen.pretrain import PretrainConfig
    from s2gen.pretrain.cli import error_message, pretrain
    from s2gen.pretrain.stream import S2WindowStream, held_out_set, make_loader

    torch.set_num_threads(1)
    path = copy_of(training_store, tmp_path, "broken.zarr")
    damage(path, "y", 1, "delete")  # zarr alone would read shard 1 of y as zeros
    where = rf"{path}: array y, shard 1 \(rows 256-511\)"
    cfg = PretrainConfig.preset("ci", window=64, batch_size=16, val_permille=500)
    with pytest.raises(s2store.StoreError, match=where):
        held_out_set(str(path), cfg, limit=10_000)
    stream = iter(S2WindowStream(str(path), cfg))
    with pytest.raises(s2store.StoreError, match=where):
        for _ in range(10_000):  # an epoch reads every chunk
            next(stream)
    loader = iter(make_loader(str(path), cfg.replace(num_workers=2)))
    with pytest.raises(s2store.StoreError, match=where) as caught:
        for _ in range(10_000):
            next(loader)
    assert "in DataLoader worker process" in str(caught.value)  # raised in a worker
    assert error_message(caught.value).startswith(f"cannot read {path}: array y, shard 1 (rows")
    assert "\n" not in error_message(caught.value)  # the worker's traceback is left out
    with pytest.raises(s2store.StoreError, match=where):
        load_series(str(path), "200:300")  # oats sample --guides, --oats-ref
    with pytest.raises(s2store.StoreError, match=where):
        store_subset(s2store.open(str(path)), 1.0, seed=0)

    damage(path, "tokens", 0, "delete")  # the first shard: validation reads it at the start
    args = ["--data", path, "--out", tmp_path / "run", "--preset", "ci", "--steps", 2]
    args += ["--batch-size", 16, "--window", 64, "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(pretrain, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert f"cannot read {path}: array tokens, shard 0 (rows 0-255)" in result.output
    args = ["train-generator", "--data", path, "--out", tmp_path / "g.pt", "--subset", 1.0]
    result = CliRunner().invoke(oats, [str(a) for a in [*args, "--steps", 2]])
    assert result.exit_code == 1 and f"cannot read {path}: array" in result.output, result.output


def test_a_second_writer_is_refused_while_the_first_runs_to_a_valid_store(tmp_path):
    path = tmp_path / "busy.zarr"
    common = ["--out", str(path), "--length", "64", "--chunk-rows", "64", "--shard-rows", "128"]
    common += ["--workers", "1", "--quiet"]
    first = subprocess.Popen(
        [sys.executable, "-m", "s2gen", "generate", "--n", "8000", *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    commits = path / s2store.COMMITS / "c"
    deadline = time.time() + 120
    while not (commits.exists() and any(commits.iterdir())):
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    result = CliRunner().invoke(main, ["generate", "--n", "8000", *common])
    assert result.exit_code == 1, result.output
    assert f"{path} is being written by another s2gen process (pid {first.pid} on" in result.output
    assert "wait for it to finish" in result.output
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "8,000 pairs" in out and not (path / store_lock.LOCK_NAME).exists()
    assert "OK" in run("validate", path, "--sample", 20).output


@pytest.mark.parametrize("fail_at", [1, 2, 13])  # the marker; the header; the last array
def test_disk_full_while_creating_leaves_a_store_the_same_command_creates(
    clean, tmp_path, monkeypatch, fail_at
):
    path = tmp_path / "new.zarr"
    real_set = zarr.storage.LocalStore.set
    calls = {"n": 0}

    async def set_(self, key, value):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", set_)
    result = generate(path, expect=1)
    assert f"disk full while setting up {path}: this run wrote no pairs" in result.output
    assert "re-run the same command" in result.output and "Traceback" not in result.output
    monkeypatch.undo()
    if fail_at > 1:
        with pytest.raises(s2store.StoreError, match="creation did not finish"):
            s2store.open(str(path))
        assert "creation did not finish" in run("info", path, expect=1).output
    generate(path)
    assert all_files(path) == all_files(clean)


KILL_DURING_CREATION = """
import os, signal, sys
import zarr.storage
real_set, calls = zarr.storage.LocalStore.set, [0]
async def set_(self, key, value):
    calls[0] += 1
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return await real_set(self, key, value)
zarr.storage.LocalStore.set = set_
from s2gen.cli import main
main(sys.argv[2:])
"""


def test_kill_dash_9_while_creating_then_the_same_command_creates_the_store(clean, tmp_path):
    path = tmp_path / "killed.zarr"
    args = ["generate", "--n", str(N), "--out", str(path), *TINY]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DURING_CREATION, "7", *args], capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (path / s2store.CREATING).exists() and (path / "zarr.json").exists()
    generate(path)
    assert all_files(path) == all_files(clean)


def test_a_real_file_size_limit_gives_the_clear_message_and_the_run_resumes(tmp_path):
    args = ["--n", "300", "--length", "64", "--chunk-rows", "32", "--shard-rows", "128"]
    args += ["--workers", "1", "--quiet"]
    clean, limited = tmp_path / "clean.zarr", tmp_path / "limited.zarr"
    run("generate", *args, "--out", clean)
    header = (clean / "zarr.json").stat().st_size
    smallest = min(object_file(clean, name, 0).stat().st_size for name in ("x", "y"))
    limit = (header + smallest) // 2
    assert header < limit < smallest  # metadata fits, a shard of x or y does not

    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "s2gen", "generate", *args, "--out", str(limited)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_file_size,
    )
    assert proc.returncode == 1, proc.stderr
    assert "file too large (a file-size limit, `ulimit -f`" in proc.stderr
    assert "0 complete shards are valid" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(limited.rglob("*.partial"))
    run("generate", *args, "--out", limited)
    assert all_files(limited) == all_files(clean)


def to_format_1(path) -> None:
    """What s2gen 0.1 wrote: no ``_s2gen/objects``, no ``objects`` attribute, format 1."""
    shutil.rmtree(Path(path, s2store.OBJECTS))
    group = zarr.open_group(str(path), mode="r+")
    header = dict(group.attrs["s2gen"], format_version=1)
    del header["objects"]
    group.attrs["s2gen"] = header


def test_a_format_1_store_reads_and_verify_checks_it_against_a_regeneration(clean, tmp_path):
    path = copy_of(clean, tmp_path)
    to_format_1(path)
    view = s2store.open(str(path))
    assert not view.has_checksums
    assert np.array_equal(view.read(0, N)["x"], s2store.open(str(clean)).read(0, N)["x"])
    result = run("validate", path, "--sample", 20)
    assert "OK: 20 rows" in result.output
    assert "note: checksums: none: store format 1 records no checksums" in result.output
    assert "with --verify" in result.output
    assert "none: store format 1" in run("info", path).output

    damage(path, "y", 1, "delete")
    damage(path, "x", 2, "truncate")
    result = run("validate", path, "--sample", 10, expect=1)
    assert "shard 1, array y: object y/c/1/0/0 is missing" in result.output
    assert "shard 2, array x: object x/c/2/0/0 does not decode" in result.output
    with pytest.raises(s2store.StoreError, match="array y, shard 1"):
        s2store.open(str(path)).read(64, 65)
    result = generate(path, expect=1)
    assert "format 1, which records no checksums" in result.output and "--verify" in result.output

    result = generate(path, "--verify")
    assert "checked 4 format-1 shards against a regeneration (2 objects differed" in result.output
    assert all_files(path) == all_files(clean)  # now format 2, byte for byte a fresh store


def test_an_interrupted_upgrade_keeps_its_records_and_checks_them_by_checksum(clean, tmp_path):
    path = copy_of(clean, tmp_path)
    to_format_1(path)
    s2store.add_object_records(str(path))  # as an upgrade killed after two shards left it
    records = zarr.open_group(str(clean), mode="r")[s2store.OBJECTS]
    zarr.open_group(str(path), mode="r+")[s2store.OBJECTS][:2] = records[:2]
    damage(path, "x", 0, "flip")  # recorded shard: found by checksum, not by regeneration
    result = generate(path, "--verify")
    assert "regenerated damaged shard(s) 0" in result.output
    assert "checked 2 format-1 shards against a regeneration (0 objects differed" in result.output
    assert all_files(path) == all_files(clean)


def test_a_store_written_by_s2gen_0_1_in_format_1_opens_validates_and_upgrades(tmp_path):
    path = tmp_path / "old.zarr"
    shutil.copytree(DATA / "format1_store", path)
    assert s2store.read_header(str(path))["format_version"] == 1
    result = run("validate", path, "--sample", 20)
    assert "OK: 20 rows" in result.output and "store format 1 records no" in result.output
    result = generate(path, "--verify", expect=1)  # made with the default mix of its day
    assert "add --sampler-preset paper" in result.output
    result = generate(path, "--verify", "--sampler-preset", "paper")
    assert "the store is now format 2" in result.output
    assert s2store.open(str(path)).has_checksums
    assert "OK: 20 rows" in run("validate", path, "--sample", 20).output


def memory_url(name: str) -> str:
    return f"memory://s2gen-tests/{name}-{os.getpid()}-{time.time_ns()}.zarr"


def test_a_remote_store_is_repaired_like_a_local_one(clean, monkeypatch):
    import fsspec

    monkeypatch.setattr(store_lock, "LEASE_SETTLE", 0.05)
    url = memory_url("repair")
    generate(url)
    fs, root = fsspec.core.url_to_fs(url)
    fs.rm(f"{root}/y/c/1/0/0")
    result = run("validate", url, "--sample", 10, expect=1)
    assert "shard 1, array y: object y/c/1/0/0 is missing" in result.output
    assert "regenerated damaged shard(s) 1" in generate(url).output
    for key, data in all_files(clean).items():
        with fsspec.open(f"{url}/{key}", "rb") as f:
            assert f.read() == data, key
    assert not fs.exists(f"{root}/{store_lock.LEASE_NAME}")  # released at the end


def test_a_remote_store_has_one_writer_through_its_lease(monkeypatch):
    monkeypatch.setattr(store_lock, "LEASE_SETTLE", 0.05)
    url = memory_url("lease")
    with store_lock.writer_lock(url) as lease:
        result = generate(url, expect=1)
        assert "is being written by another s2gen process" in result.output
        assert "if it was killed, its lease expires at" in result.output
        lease.check()
    assert s2store.read_object(url, store_lock.LEASE_NAME) is None

    def left_behind(expires):
        lease = {"owner": "killed-run", "host": "node7", "pid": 4242, "since": time.time()}
        s2store.write_object(url, store_lock.LEASE_NAME, json.dumps(lease | expires).encode())

    left_behind({"expires": time.time() + 600})  # a killed run's lease: in force until it expires
    assert "pid 4242 on node7" in generate(url, expect=1).output
    left_behind({"expires": time.time() - 1})  # expired: taken over
    generate(url)
    assert "OK" in run("validate", url, "--sample", 10).output


def test_a_lease_taken_by_another_writer_stops_the_holder_before_its_next_record():
    url = memory_url("lost")
    with store_lock.writer_lock(url, ttl=0.4, settle=0.05) as lease:
        lease.check()
        thief = {"owner": "other", "host": "h", "pid": 1, "since": 0, "expires": time.time() + 60}
        s2store.write_object(url, store_lock.LEASE_NAME, json.dumps(thief).encode())
        time.sleep(0.3)  # the renewal thread (every ttl / 4) finds it
        with pytest.raises(s2store.StoreError, match="lost the writer lease .* another writer"):
            lease.check()
    assert json.loads(s2store.read_object(url, store_lock.LEASE_NAME))["owner"] == "other"
