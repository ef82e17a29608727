"""`s2gen generate / info / show / validate` on tiny stores: format, identity, resume, errors."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.config import GenerateConfig
from s2gen.kernels.excitation import SAMPLER_CODES
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols.render import lambdify

TINY = ["--length", "32", "--chunk-rows", "32", "--shard-rows", "64", "--quiet"]
MULTI = ["--max-input-dim", "2", "--max-output-dim", "2"]


def run(*args, expect=0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def generate(path, n=200, *extra, workers=1):
    return run("generate", "--n", n, "--out", path, *TINY, "--workers", workers, *extra)


def read_all(path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in s2store.ARRAY_NAMES}


def assert_same_store(a, b, same_layout=True):
    da, db = read_all(a), read_all(b)
    for name in s2store.ARRAY_NAMES:
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)
    ha = zarr.open_group(str(a), mode="r").attrs["s2gen"]
    hb = zarr.open_group(str(b), mode="r").attrs["s2gen"]
    if not same_layout:
        ha, hb = dict(ha, store=None), dict(hb, store=None)
    assert ha == hb


def shard_files(path):
    root = Path(path)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "/c/" in str(p.relative_to(root)).replace(os.sep, "/") + "/"
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    generate(path, 300, *MULTI)
    return path


def test_store_has_the_documented_names_dtypes_shapes_and_attrs(reference):
    group = zarr.open_group(str(reference), mode="r")
    header = group.attrs["s2gen"]
    config = GenerateConfig.from_dict(header["config"])
    T = header["token_length"]
    expected = {
        "x": ((300, 2, 32), "float32"),
        "y": ((300, 2, 32), "float32"),
        "n_in": ((300,), "uint8"),
        "n_out": ((300,), "uint8"),
        "tokens": ((300, 2, T), "int16"),
        "sampler": ((300, 2), "uint8"),
        "seed": ((300,), "uint64"),
    }
    for name, (shape, dtype) in expected.items():
        assert group[name].shape == shape and str(group[name].dtype) == dtype, name
        assert group[name].chunks[0] == 32 and group[name].shards[0] == 64
    assert group["expr"].shape == (300, 2) and group["expr"].dtype == np.dtypes.StringDType()
    assert set(group.array_keys()) == set(s2store.ARRAY_NAMES)
    assert header["format_version"] == 2 and header["rows"] == 300
    assert header["objects"] == {"arrays": list(s2store.ARRAY_NAMES), "checksum": "crc32c"}
    records = group["_s2gen/objects"][:]  # (shards, arrays, 2): size and CRC-32C of each object
    assert records.shape == (5, len(s2store.ARRAY_NAMES), 2)
    for k in range(5):
        for a, name in enumerate(s2store.ARRAY_NAMES):
            key = group[name].metadata.encode_chunk_key((k,) + (0,) * (group[name].ndim - 1))
            data = (Path(reference) / name / key).read_bytes()
            assert tuple(records[k, a]) == (len(data), google_crc32c.value(data)), (k, name)
    assert header["rows_written"] == 300
    assert config.max_input_dim == 2 and config.length == 32
    assert header["vocabulary"][:5] == ["<pad>", "<bos>", "<eos>", "<mask>", "<sep>"]
    assert {op["name"] for op in header["operators"]} >= {"add", "sqrt", "log"}
    assert header["sampler_codes"] == {
        "padding": 0,
        "mixture": 1,
        "arma": 2,
        "kernel_synth": 3,
        "trend_season": 4,
        "imf": 5,
        "sarima": 6,
    }
    assert header["acceptance"]["accepted"] == 300
    assert header["package_version"]
    np.testing.assert_array_equal(group["seed"][:], row_seeds(0, 0, 300))


def test_stored_expressions_reproduce_stored_y_through_sympy(reference):
    view = s2store.open(str(reference))
    for i in range(0, 300, 7):
        pair = view[i]
        for j, text in enumerate(pair.expr):
            want = lambdify(text, len(pair.x))(pair.x.astype(np.float64)).astype(np.float32)
            assert np.allclose(want, pair.y[j], rtol=2e-7, atol=0), text
    assert "OK: 300 rows" in run("validate", reference, "--sample", 0).output


def test_store_is_identical_for_any_worker_count_and_shard_size(reference, tmp_path):
    two = tmp_path / "two.zarr"
    generate(two, 300, *MULTI, workers=2)
    assert_same_store(reference, two)
    assert shard_files(reference) == shard_files(two)  # same layout: same bytes on disk
    other = tmp_path / "other.zarr"
    run(
        "generate",
        "--n",
        300,
        "--out",
        other,
        "--length",
        32,
        "--chunk-rows",
        16,
        "--shard-rows",
        48,
        "--quiet",
        "--workers",
        1,
        *MULTI,
    )
    assert_same_store(reference, other, same_layout=False)


def test_every_sampler_family_gives_the_same_store_for_one_and_two_workers(tmp_path):
    families = ("--sampler-preset", "all", "--temporal-ops", *MULTI)
    generate(tmp_path / "one.zarr", 200, *families, workers=1)
    generate(tmp_path / "two.zarr", 200, *families, workers=2)
    assert_same_store(tmp_path / "one.zarr", tmp_path / "two.zarr")
    codes = np.unique(read_all(tmp_path / "one.zarr")["sampler"])
    assert set(codes) == {0, 1, 2, 3, 4, 5, 6}


def test_a_store_written_through_fsspec_equals_the_local_one(reference):
    import fsspec

    url = f"memory://s2gen-tests/{os.getpid()}-{time.time_ns()}.zarr"
    generate(url, 300, *MULTI)
    assert_same_store(reference, url)
    for key, data in shard_files(reference).items():  # same objects, byte for byte
        with fsspec.open(f"{url}/{key}", "rb") as f:
            assert f.read() == data, key


def test_a_larger_n_extends_a_finished_store(reference, tmp_path):
    path = tmp_path / "grow.zarr"
    generate(path, 100, *MULTI)  # last shard is partial (100 = 64 + 36)
    generate(path, 300, *MULTI)
    assert_same_store(reference, path)


def test_a_different_config_is_refused_unless_overwrite(reference, tmp_path):
    path = tmp_path / "s.zarr"
    generate(path, 100)
    result = run("generate", "--n", 100, "--out", path, *TINY, "--seed", 9, expect=1)
    assert "another config" in result.output and "seed" in result.output
    assert read_all(path)["seed"][0] == row_seeds(0, 0, 1)[0]  # untouched
    generate(path, 100, "--seed", 9, "--overwrite")
    assert read_all(path)["seed"][0] == row_seeds(9, 0, 1)[0]
    result = run(
        "generate", "--n", 100, "--out", path, *TINY, "--seed", 9, "--shard-rows", 32, expect=1
    )
    assert "another layout" in result.output


def test_a_store_of_the_old_default_mix_resumes_with_the_paper_preset(tmp_path):
    path = tmp_path / "paper.zarr"
    generate(path, 100, "--sampler-preset", "paper")  # the default before SARIMA pairs
    before = read_all(path)
    result = run("generate", "--n", 200, "--out", path, *TINY, expect=1)
    assert "another config" in result.output and "add --sampler-preset paper" in result.output
    assert all(np.array_equal(before[k], v) for k, v in read_all(path).items())  # untouched
    generate(path, 200, "--sampler-preset", "paper")
    paper_codes = {SAMPLER_CODES["mixture"], SAMPLER_CODES["arma"]}
    assert set(np.unique(read_all(path)["sampler"][:, 0]).tolist()) == paper_codes


def test_a_store_older_than_sampler_weights_reads_as_the_paper_mix(tmp_path):
    path = tmp_path / "older.zarr"
    generate(path, 100, "--sampler-preset", "paper")
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"]["s2gen"]["config"]["sampler_weights"]  # as stores before 2fce470
    meta.write_text(json.dumps(doc))
    assert s2store.open(str(path)).config == GenerateConfig(length=32, sampler_weights=())
    result = run("generate", "--n", 200, "--out", path, *TINY, expect=1)
    assert "add --sampler-preset paper" in result.output
    generate(path, 200, "--sampler-preset", "paper")
    assert len(s2store.open(str(path))) == 200


def test_a_smaller_n_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    generate(path, 100)
    assert "does not shrink" in run("generate", "--n", 50, "--out", path, *TINY, expect=1).output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--n", "0"], "at least 1"),
        (["--n", "-5"], "at least 1"),
        (["--n", "abc"], "not a number"),
        (["--n", "1.5"], "whole number"),
        (["--n", "10", "--length", "1"], "length"),
        (["--n", "10", "--min-input-dim", "3", "--max-input-dim", "2"], "min_input_dim"),
        (["--n", "10", "--mixture-prob", "1.5"], "mixture_prob"),
        (["--n", "10", "--mixture-prob", "0.5"], "--sampler-preset paper"),
        (["--n", "10", "--mixture-prob", "0.3"], "the share of mixture series in the paper"),
        (["--n", "10", "--mixture-components", "3"], "which this mix (sarima=1) never draws"),
        (["--n", "10", "--arma-max-p", "2", "--samplers", "imf=1"], "--sampler-preset paper"),
        (["--n", "10", "--operators", "foo=1"], "unknown operator"),
        (["--n", "10", "--operators", "div"], "NAME=WEIGHT"),
        (["--n", "10", "--shard-rows", "100", "--chunk-rows", "32"], "multiple of chunk_rows"),
        (["--n", "10", "--samplers", "gp=1"], "unknown sampler"),
        (["--n", "10", "--samplers", "arma"], "NAME=WEIGHT"),
        (["--n", "10", "--samplers", "arma=0"], "weight > 0"),
        (["--n", "10", "--sampler-preset", "fancy"], "fancy"),
        (["--n", "10", "--expr", "x_0 + 0.1234"], "three significant digits"),
        (["--n", "10", "--expr", "y + 1"], "unknown symbol"),
        (["--n", "10", "--expr", "x_1", "--max-input-dim", "1"], "min_input_dim"),
    ],
)
def test_bad_input_gets_a_clear_error_naming_the_setting(tmp_path, args, message):
    path = tmp_path / "s.zarr"
    result = CliRunner().invoke(main, ["generate", "--out", str(path), "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not path.exists()


def test_out_path_that_is_a_file_or_not_writable_is_refused(tmp_path):
    afile = tmp_path / "file.txt"
    afile.write_text("keep me")
    result = run("generate", "--n", 10, "--out", afile, *TINY, expect=1)
    assert "is a file" in result.output and afile.read_text() == "keep me"
    result = run("generate", "--n", 10, "--out", "/proc/s2gen-test/s.zarr", *TINY, expect=1)
    assert "not writable" in result.output


def test_foreign_data_is_never_touched(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("x")
    result = run("generate", "--n", 10, "--out", other, *TINY, "--overwrite", expect=1)
    assert "not a Zarr store" in result.output and (other / "a.txt").exists()
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("a", shape=(3,), dtype="int8")
    assert (
        "not an s2gen store" in run("generate", "--n", 10, "--out", plain, *TINY, expect=1).output
    )
    future = tmp_path / "future.zarr"
    zarr.open_group(str(future), mode="w", attributes={"s2gen": {"format_version": 99}})
    assert "format 99" in run("info", future, expect=1).output


@pytest.mark.parametrize(
    "code,message", [(errno.ENOSPC, "disk full"), (errno.EFBIG, "file too large")]
)
def test_full_disk_keeps_completed_shards_cleans_the_partial_one_and_resumes(
    reference, tmp_path, monkeypatch, code, message
):
    path = tmp_path / "full.zarr"
    real_open = Path.open
    calls = {"n": 0}

    class FullDisk:  # a file whose writes fail once the first bytes are in
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(bytes(memoryview(data)[:10]))
            calls["n"] += 1
            raise OSError(code, os.strerror(code))

    def open_(p, mode="r", *args, **kwargs):
        file = real_open(p, mode, *args, **kwargs)
        if (
            "w" in mode
            and p.name.endswith(".partial")
            and p.parts[-5:-3] == ("y", "c")
            and p.parts[-3] == "2"
        ):
            return FullDisk(file)
        return file

    monkeypatch.setattr(Path, "open", open_)
    result = run("generate", "--n", 300, "--out", path, *TINY, *MULTI, "--workers", 1, expect=1)
    assert calls["n"] == 1 and message in result.output and "2 complete shards" in result.output
    assert "re-run the same command to resume" in result.output
    assert sorted(s2store.shard_records(str(path))) == [0, 1]
    assert not list(path.rglob("*.partial")) and not (path / "y" / "c" / "2" / "0" / "0").exists()
    monkeypatch.setattr(Path, "open", real_open)
    generate(path, 300, *MULTI)
    assert_same_store(reference, path)


SLOW_N = 60_000  # a run of several seconds, so a kill or Ctrl-C lands mid-run


def _start(path, n, *extra):
    cmd = [
        sys.executable,
        "-m",
        "s2gen",
        "generate",
        "--n",
        str(n),
        "--out",
        str(path),
        "--length",
        "64",
        "--chunk-rows",
        "64",
        "--shard-rows",
        "128",
        "--quiet",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint():
    # a shell's background job ignores SIGINT, and its children inherit that
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_shards(path, count, proc, timeout=120):
    deadline = time.time() + timeout
    commits = Path(path) / s2store.COMMITS / "c"
    while time.time() < deadline:
        if commits.exists() and len(list(commits.iterdir())) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the generator made no progress")


def _uninterrupted(path, n):
    """The same run as ``_start``'s, without interruption, in this process."""
    run(*["generate", "--n", n, "--out", path, "--length", 64, "--chunk-rows", 64], *SLOW_TAIL)
    return path


SLOW_TAIL = ["--shard-rows", 128, "--quiet", "--workers", 2]


def assert_same_shard_files(a, b):
    """Every shard object and commit record of two stores, byte for byte."""
    files_a, files_b = shard_files(a), shard_files(b)
    assert {name.split("/")[0] for name in files_a} >= {*s2store.ARRAY_NAMES, "_s2gen"}
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, different


@pytest.mark.slow
def test_kill_dash_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    n = SLOW_N
    killed = tmp_path / "killed.zarr"
    proc = _start(killed, n, "--workers", "2")
    _wait_for_shards(killed, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(s2store.shard_records(str(killed)))
    assert 3 <= done < s2store.shard_count(n, 128), "kill came too late to test anything"
    resumed = _start(killed, n, "--workers", "2")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not list(killed.rglob("*.partial"))
    whole = _uninterrupted(tmp_path / "whole.zarr", n)
    assert_same_store(whole, killed)
    assert_same_shard_files(whole, killed)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    path = tmp_path / "int.zarr"
    proc = _start(path, SLOW_N, "--workers", "2")
    _wait_for_shards(path, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    assert not list(path.rglob("*.partial"))
    done = len(s2store.shard_records(str(path)))
    assert 2 <= done < s2store.shard_count(SLOW_N, 128), "Ctrl-C came too late to test anything"
    run(
        "generate",
        "--n",
        SLOW_N,
        "--out",
        path,
        "--length",
        64,
        "--chunk-rows",
        64,
        "--shard-rows",
        128,
        "--quiet",
        "--workers",
        1,
    )
    assert "OK" in run("validate", path, "--sample", 50).output
    whole = _uninterrupted(tmp_path / "whole.zarr", SLOW_N)
    assert_same_store(whole, path)
    assert_same_shard_files(whole, path)


def test_config_file_is_read_and_flags_override_it(tmp_path):
    conf = tmp_path / "gen.toml"
    conf.write_text(
        "n = 100\nlength = 48\nseed = 4\nshard_rows = 64\nchunk_rows = 32\n"
        "[operator_weights]\ndiv = 1.0\n"
    )
    path = tmp_path / "c.zarr"
    run("generate", "--config", conf, "--out", path, "--seed", 5, "--quiet", "--workers", 1)
    header = zarr.open_group(str(path), mode="r").attrs["s2gen"]
    assert header["rows"] == 100 and header["config"]["length"] == 48
    assert header["config"]["seed"] == 5 and header["config"]["operator_weights"]["div"] == 1.0
    assert header["store"]["shard_rows"] == 64
    conf_json = tmp_path / "gen.json"
    conf_json.write_text(json.dumps({"n": 10, "lenght": 3}))
    result = CliRunner().invoke(
        main, ["generate", "--config", str(conf_json), "--out", str(tmp_path / "d.zarr")]
    )
    assert result.exit_code == 2 and "lenght" in result.output


def test_info_show_and_validate_commands(reference, tmp_path):
    out = run("info", reference).output
    for key in (
        "rows",
        "input_dims",
        "output_dims",
        "sampler_mix",
        "operator_counts",
        "acceptance_rate",
        "bytes_on_disk",
        "format_version",
    ):
        assert key in out
    facts = json.loads(run("info", reference, "--json").output)
    assert facts["rows"] == 300 and sum(facts["input_dims"].values()) == 300
    assert sum(facts["sampler_mix"].values()) == int(read_all(reference)["n_in"].sum())
    shown = run("show", reference, 5, "--plot", tmp_path / "p.png").output
    assert "y_0 =" in shown and "samplers" in shown and (tmp_path / "p.png").stat().st_size > 0
    assert "outside" in run("show", reference, 999, expect=2).output


def test_validate_names_each_failing_row(reference, tmp_path):
    import shutil

    broken = tmp_path / "broken.zarr"
    shutil.copytree(reference, broken)
    group = zarr.open_group(str(broken), mode="r+")
    y = group["y"][0:64]
    y[10, 0, 5] += 1.0  # row 10: y no longer f(x)
    group["y"][0:64] = y
    expr = group["expr"][64:128]
    expr[3, 0] = "(x_0 + 1.0)"  # row 67: tokens and y disagree with expr
    group["expr"][64:128] = expr
    result = run("validate", broken, "--sample", 10, expect=1)  # written behind s2gen's back
    assert "shard 0, array y: object y/c/0/0/0 has CRC-32C" in result.output
    assert "shard 1, array expr: object expr/c/1/0 is" in result.output
    for k, name in ((0, "y"), (1, "expr")):  # as if the generator itself had written them
        key = group[name].metadata.encode_chunk_key((k,) + (0,) * (group[name].ndim - 1))
        data = (broken / name / key).read_bytes()
        a = s2store.ARRAY_NAMES.index(name)
        group["_s2gen/objects"][k, a] = [len(data), google_crc32c.value(data)]
    result = run("validate", broken, "--sample", 0, expect=1)
    assert "row 10:" in result.output and "row 67:" in result.output
    assert "FAILED" in result.output and "300 rows" in result.output


def test_incomplete_store_is_reported(tmp_path):
    path = tmp_path / "part.zarr"
    generate(path, 200)
    s2store.drop_shard(str(path), 1)
    with pytest.raises(s2store.StoreError, match="incomplete"):
        s2store.open(str(path))
    result = run("validate", path, expect=1)
    assert "shard 1 is not committed" in result.output


@pytest.mark.slow
def test_dask_cluster_writes_the_same_store(reference, tmp_path):
    from dask import distributed

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        path = tmp_path / "dask.zarr"
        generate(path, 300, *MULTI, "--scheduler", cluster.scheduler_address)
    assert_same_store(reference, path)
