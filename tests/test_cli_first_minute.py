"""What a new user meets first (issue 13, sections 4 and 5): the compile notice, help text for
every option, both operator spellings, ``--n`` spellings, and the README's Python snippet."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from s2gen.cli import OPERATOR_ALIASES, Count, generate, main
from s2gen.config import GenerateConfig
from s2gen.generate import warm_up
from s2gen.kernels import cache
from s2gen.kernels import opcodes as oc
from s2gen.symbols.operators import BY_NAME, OPERATORS
from s2gen.symbols.render import to_infix

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--length", "32", "--chunk-rows", "32", "--shard-rows", "64", "--workers", "1"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _cached_in_subprocess(**env) -> str:
    code = "from s2gen.kernels.cache import kernels_cached; print(kernels_cached())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return out.stdout.strip()


def test_a_cold_numba_cache_is_detected_and_a_warm_one_is_not(tmp_path):
    warm_up(GenerateConfig(length=32))  # compiles once if this is the first test to need it
    assert cache.kernels_cached()
    assert _cached_in_subprocess(NUMBA_CACHE_DIR=str(tmp_path)) == "False"  # an empty cache
    assert _cached_in_subprocess(NUMBA_DISABLE_JIT="1") == "True"  # nothing to compile


@pytest.mark.parametrize("cached,shown", [(False, True), (True, False)], ids=["cold", "warm"])
def test_generate_says_it_compiles_before_a_cold_start_only(tmp_path, monkeypatch, cached, shown):
    monkeypatch.setattr(cache, "kernels_cached", lambda: cached)
    result = invoke("generate", "--n", 10, "--out", tmp_path / "s.zarr", *TINY)
    assert result.exit_code == 0, result.output
    assert (cache.COMPILE_NOTICE in result.stderr) == shown
    assert "about a minute" in cache.COMPILE_NOTICE and "cache" in cache.COMPILE_NOTICE


def test_quiet_generate_prints_no_compile_notice(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "kernels_cached", lambda: False)
    result = invoke("generate", "--n", 10, "--out", tmp_path / "s.zarr", *TINY, "--quiet")
    assert result.exit_code == 0 and cache.COMPILE_NOTICE not in result.stderr


def test_every_generate_option_has_help_text():
    missing = [p.opts[0] for p in generate.params if not getattr(p, "help", None)]
    assert missing == []
    text = invoke("generate", "--help").output
    for name in ("--shard-rows", "--compressor", "--arma-burn-in", "--const-leaf-prob"):
        assert name in text


def test_show_help_names_the_plot_extra():
    assert "s2gen[plot]" in invoke("show", "--help").output


def test_operator_aliases_are_the_rendered_names():
    """tdiff, tlag4, atan, ...: each alias is the function name its operator renders to."""
    assert OPERATOR_ALIASES["tdiff"] == "diff" and OPERATOR_ALIASES["tlag16"] == "lag16"
    assert OPERATOR_ALIASES["atan"] == "arctan" and OPERATOR_ALIASES["tmavg4"] == "mavg4"
    for alias, name in OPERATOR_ALIASES.items():
        op = BY_NAME[name]
        code = np.array([op.code, oc.VAR], np.int8)  # op(x_0)
        text = to_infix(code, np.zeros(2, np.int32), 2)
        function = re.match(r"[A-Za-z]+", text).group(0)
        assert alias.startswith(function), (alias, text)
        assert "".join(ch for ch in alias if ch.isdigit()) in text


def test_operators_accept_both_spellings_and_the_error_lists_both(tmp_path):
    registry = tmp_path / "registry.zarr"
    rendered = tmp_path / "rendered.zarr"
    ops = {registry: "diff=1,lag4=2,arctan=0.5", rendered: "tdiff=1,tlag4=2,atan=0.5"}
    for path, text in ops.items():
        result = invoke("generate", "--n", 10, "--out", path, *TINY, "--quiet", "--operators", text)
        assert result.exit_code == 0, result.output
    configs = [zarr.open_group(str(p), mode="r").attrs["s2gen"]["config"] for p in ops]
    assert configs[0] == configs[1]
    weights = configs[0]["operator_weights"]
    assert (weights["diff"], weights["lag4"], weights["arctan"]) == (1.0, 2.0, 0.5)
    result = invoke("generate", "--n", 10, "--out", tmp_path / "x.zarr", "--operators", "tfoo=1")
    assert result.exit_code == 2 and not (tmp_path / "x.zarr").exists()
    for op in OPERATORS:
        assert op.name in result.output
    assert "diff (tdiff)" in result.output and "lag16 (tlag16)" in result.output


@pytest.mark.parametrize("text", ["1e2", "1_00", "100", "1.0e2", " 100 "])
def test_n_accepts_scientific_and_underscored_counts(text):
    assert Count().convert(text, None, None) == 100


def test_n_written_1e2_and_1_00_make_the_same_store(tmp_path):
    for text in ("1e2", "1_00"):
        path = tmp_path / f"{text}.zarr"
        result = invoke("generate", "--n", text, "--out", path, *TINY, "--quiet")
        assert result.exit_code == 0, result.output
        assert zarr.open_group(str(path), mode="r").attrs["s2gen"]["rows"] == 100


def _readme_python_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("### In Python")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    return block.group(1).splitlines()


def _literal(text: str):
    """The Python literal ``text`` is ("True", "(3, 4)", "'x_0'"), else None."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def test_readme_python_snippet_prints_what_its_comments_say(tmp_path, monkeypatch):
    """Runs the README's snippet line by line (the store it opens is made here first); every
    expression line whose comment starts with a Python literal must evaluate to it."""
    assert invoke("generate", "--n", 64, "--out", tmp_path / "s2.zarr", *TINY).exit_code == 0
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    checked = 0
    for line in _readme_python_block():
        code, _, comment = line.partition("  # ")
        if not code.strip():
            continue
        statement = ast.parse(code.strip()).body[0]
        expected = _literal(comment.strip()) or _literal(comment.split(": ")[0].strip())
        if isinstance(statement, ast.Expr) and expected is not None:
            assert eval(code.strip(), namespace) == expected, line  # the README, not user data
            checked += 1
        else:
            exec(code.strip(), namespace)
    assert checked >= 3
