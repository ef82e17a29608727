"""One corruption per check of ``s2gen validate`` (docs/FORMAT.md invariants): each names the
rows it breaks, and validation must report exactly those rows with the check's message.

Corruptions are written through zarr, as any writer could; other checks (a shard checksum,
say) may report them too, so a case asserts that its message is among the failures and that
no other row fails, not that its message is the only one.
"""

import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.inspect import validate
from tests.store_edits import record_again

ROWS = 32  # two shards of 16 rows; every row is checked


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("validate") / "s.zarr"
    args = ["generate", "--n", ROWS, "--out", path, "--length", 32, "--chunk-rows", 16]
    args += ["--shard-rows", 16, "--max-input-dim", 2, "--max-output-dim", 2, "--quiet"]
    result = CliRunner().invoke(main, [str(a) for a in [*args, "--workers", 1]])
    assert result.exit_code == 0, result.output
    report = validate(str(path), None)
    assert report.ok and report.rows_checked == ROWS, report.failures
    return path


def first(group, name, value) -> int:
    """The first row whose ``name`` equals ``value`` (a store of this size always has one)."""
    return int(np.flatnonzero(group[name][:] == value)[0])


def set_row(group, name, row, update) -> None:
    """Read row ``row`` of array ``name``, apply ``update`` in place, write it back."""
    values = group[name][row : row + 1]
    update(values[0])
    group[name][row : row + 1] = values


def uses_x1(group) -> int:
    """A row with two inputs whose first output uses x_1."""
    expr, n_in = group["expr"][:, 0], group["n_in"][:]
    return int(next(i for i in range(ROWS) if n_in[i] == 2 and "x_1" in str(expr[i])))


def _assign(index, value):
    def update(a):
        a[index] = value

    return update


# each corruption changes the store and returns (rows that must fail, message they must carry)
def n_in_too_large(g):
    g["n_in"][5] = 3
    return [5], "n_in=3 outside [1, 2]"


def n_out_zero(g):
    g["n_out"][6] = 0
    return [6], "n_out=0 outside [1, 2]"


def n_in_too_small_for_the_expression(g):
    r = uses_x1(g)
    g["n_in"][r] = 1
    return [r], "output 0: cannot evaluate expr"


def nan_in_x(g):
    set_row(g, "x", 7, _assign((0, 3), np.nan))
    return [7], "non-finite value in x or y"


def inf_in_y(g):
    set_row(g, "y", 20, _assign((0, 0), np.inf))
    return [20], "non-finite value in x or y"


def x_padding(g):
    r = first(g, "n_in", 1)
    set_row(g, "x", r, _assign((1, 4), 1.0))
    return [r], "padding channels are not zero"


def y_padding(g):
    r = first(g, "n_out", 1)
    set_row(g, "y", r, _assign((1, 2), -1.0))
    return [r], "padding channels are not zero"


def sampler_padding(g):
    r = first(g, "n_in", 1)
    set_row(g, "sampler", r, _assign(1, 2))
    return [r], "padding channels are not zero"


def tokens_padding(g):
    r = first(g, "n_out", 1)
    set_row(g, "tokens", r, _assign((1, 0), 5))
    return [r], "padding channels are not zero"


def expr_padding(g):
    r = first(g, "n_out", 1)
    expr = g["expr"][r : r + 1]
    expr[0, 1] = "x_0"
    g["expr"][r : r + 1] = expr
    return [r], "padding channels are not zero"


def unknown_sampler(g):
    set_row(g, "sampler", 9, _assign(0, 9))
    return [9], "unknown sampler codes [9"


def seed_mismatch(g):
    g["seed"][11] = g["seed"][11] + np.uint64(1)
    return [11], "seed is not the row seed of (config.seed, row)"


def constant_output(g):
    set_row(g, "y", 12, _assign(0, 1.5))
    return [12], "output 0 is constant"


def y_not_f_of_x(g):
    set_row(g, "y", 13, lambda y: y.__setitem__((0, 5), y[0, 5] + 1.0))
    return [13], "output 0: y differs from sympy's"


def x_changed(g):
    set_row(g, "x", 14, lambda x: x.__setitem__((0, 1), x[0, 1] * 2 + 1))
    return [14], "regenerating the pair from (config, seed) gives other values"


def tokens_unreadable(g):
    set_row(g, "tokens", 15, _assign((0, slice(None)), 3))
    return [15], "output 0: tokens do not decode"


def tokens_of_another_expression(g):
    tokens = g["tokens"][:]
    tokens[16, 0] = tokens[17, 0]
    g["tokens"][:] = tokens
    same = str(g["expr"][16, 0]) == str(g["expr"][17, 0])
    return ([] if same else [16]), "output 0: tokens decode to another expression than expr"


def expr_unparsable(g):
    expr = g["expr"][18:19]
    expr[0, 0] = "((x_0 +"
    g["expr"][18:19] = expr
    return [18], "output 0: cannot evaluate expr"


CASES = [
    n_in_too_large,
    n_out_zero,
    n_in_too_small_for_the_expression,
    nan_in_x,
    inf_in_y,
    x_padding,
    y_padding,
    sampler_padding,
    tokens_padding,
    expr_padding,
    unknown_sampler,
    seed_mismatch,
    constant_output,
    y_not_f_of_x,
    x_changed,
    tokens_unreadable,
    tokens_of_another_expression,
    expr_unparsable,
]


@pytest.mark.parametrize("corrupt", CASES, ids=lambda f: f.__name__)
def test_each_row_check_names_exactly_the_corrupted_rows(pristine, tmp_path, corrupt):
    path = tmp_path / "s.zarr"
    shutil.copytree(pristine, path)
    rows, message = corrupt(zarr.open_group(str(path), mode="r+"))
    assert rows, "the corruption must break a row"
    record_again(path)  # the objects' records follow the edit: the row checks must find it
    report = validate(str(path), None)
    failing = {row for row, _ in report.failures if row is not None}
    assert failing == set(rows), report.failures
    for row in rows:
        assert any(r == row and message in m for r, m in report.failures), report.failures


def _recreate(group, name, dtype=None, shape=None):
    """Replace array ``name`` by one of another dtype or shape, holding the same values."""
    old = group[name]
    values = old[:]
    shape = shape or old.shape
    new = np.zeros(shape, dtype or old.dtype)
    new[tuple(slice(0, min(a, b)) for a, b in zip(shape, old.shape, strict=True))] = values[
        tuple(slice(0, min(a, b)) for a, b in zip(shape, old.shape, strict=True))
    ]
    chunks = (old.chunks[0],) + shape[1:]
    shards = (old.shards[0],) + shape[1:]
    del group[name]
    group.create_array(name, shape=shape, dtype=new.dtype, chunks=chunks, shards=shards)
    group[name][:] = new


def wrong_dtype(g):
    _recreate(g, "n_in", dtype=np.uint16)
    return "array n_in has dtype uint16, expected uint8"


def wrong_shape(g):
    _recreate(g, "sampler", shape=(ROWS, 3))
    return f"array sampler has shape ({ROWS}, 3), expected ({ROWS}, 2)"


def shard_object_missing(g):
    store = g.store
    key = s2store._shard_key(g["tokens"], 1)
    assert key.startswith("tokens/c/")
    (store.root / key).unlink()
    return f"shard 1, array tokens: object {key} is missing (recorded"


@pytest.mark.parametrize(
    "corrupt", [wrong_dtype, wrong_shape, shard_object_missing], ids=lambda f: f.__name__
)
def test_each_store_check_reports_the_store(pristine, tmp_path, corrupt):
    path = tmp_path / "s.zarr"
    shutil.copytree(pristine, path)
    message = corrupt(zarr.open_group(str(path), mode="r+"))
    report = validate(str(path), None)
    assert any(row is None and message in m for row, m in report.failures), report.failures
    if corrupt is shard_object_missing:  # a damaged shard's rows are not read as padding
        assert all(row is None for row, _ in report.failures), report.failures
    result = CliRunner().invoke(main, ["validate", str(path), "--sample", "0"])
    assert result.exit_code == 1 and f"store: {message}" in result.output
