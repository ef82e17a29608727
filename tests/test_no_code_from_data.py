"""No expression string runs code: hostile text through every entry point; a scan of the package.

Each hostile string below would run code, hang or exhaust memory if it reached
Python's ``eval`` (which sympy's text parser uses). Through every entry point
(the Python API, ``--expr``, TOML/YAML/JSON config files, a store's header and
its ``expr`` array, under ``info``/``show``/``validate``/``generate``/``pretrain``)
each must give one clear error naming the field and the offending token, and
the payloads' side effects (a file ``PWNED`` in the working directory, an
attribute on ``builtins``) must not appear. Exit codes: 2 for a bad argument or
config file (click's usage error), 1 for a bad store.
"""

import builtins
import json
import re
import shutil
from pathlib import Path

import pytest
import zarr
from click.testing import CliRunner

from s2gen.cli import main
from s2gen.config import GenerateConfig
from s2gen.symbols.parse import ExpressionError, program_of
from s2gen.symbols.render import lambdify, parse_infix
from tests.store_edits import record_again

PACKAGE = Path(__file__).resolve().parents[1] / "s2gen"
SENTINEL = "S2GEN_PWNED"

HOSTILE = [  # (id, text, what the message must name)
    ("attribute-chain", "x_0.__class__.__mro__", "'.' at column 4: attribute access"),
    ("import-os", "__import__('os').system('touch PWNED')", "'__import__' at column 1"),
    ("import-later", "x_0 + __import__('os').system('touch PWNED')", "'__import__' at column 7"),
    ("setattr", f"setattr(__import__('builtins'), '{SENTINEL}', 1)", "'__import__' at column 9"),
    ("open", "open('PWNED', 'w') and x_0", '"\'" at column 6: strings'),
    ("exec", "exec(\"open('PWNED', 'w')\") + x_0", "'\"' at column 6: strings"),
    ("eval", "eval('x_0')", '"\'" at column 6: strings'),
    ("lambda", "(lambda: open('PWNED', 'w'))() + x_0", "':' at column 8: lambdas"),
    ("comprehension", "[open('PWNED', 'w') for _ in (1,)]", "'[' at column 1: subscripts"),
    ("generator", "sum(x_0 for x_0 in (1, 2))", "'sum' at column 1 is not in s2gen's language"),
    ("f-string", 'f\'{open("PWNED", "w")}\'', '"\'" at column 2: strings'),
    ("format", "'{0.__class__}'.format(x_0)", '"\'" at column 1: strings'),
    ("subscript", "(x_0, x_1)[0]", "'[' at column 11: subscripts"),
    ("keyword-call", "sin(x=1)", "'=' at column 6: keyword arguments"),
    ("string", "'x_0'", '"\'" at column 1: strings'),
    ("dunder", "__builtins__", "'__builtins__' at column 1: names with '__'"),
    ("walrus", "(y := x_0)", "':' at column 4: lambdas"),
    ("statements", "x_0; open('PWNED', 'w')", "';' at column 4: statements"),
    ("line-break", "x_0\nopen('PWNED', 'w')", "'\\n' at column 4: line breaks"),
    ("terminal-escape", "x_0\x1b[2J", "'\\x1b' at column 4"),
    ("look-alike", "x_0 + \uff58_1", "at column 7: only ASCII characters"),
    ("deep-10k", "(" * 10_000 + "x_0" + ")" * 10_000, "20,003 characters; at most 10,000"),
    ("deep-300", "(" * 300 + "x_0" + ")" * 300, "nests deeper than 100 levels (at column 101)"),
    ("million-chars", "x_0+" * 250_000 + "x_0", "1,000,003 characters"),
    ("power-tower", "x_0**10**100", "the power 100 at column 10 is not supported"),
    ("nine-nines", "9**9**9", "the power 9 at column 7 is not supported"),
    ("huge-integer", "7" * 5000 + "*x_0", "at column 1 is longer than 32 characters"),
    ("integer-blow-up", "((((((9**3)**3)**3)**3)**3)**3)*x_0", "more than 300 digits"),
    ("huge-exponent", "1e99999999*x_0", "'1e99999999' at column 1 has an exponent over 3 digits"),
]
IDS = [case[0] for case in HOSTILE]
TINY = ["--length", "16", "--chunk-rows", "32", "--shard-rows", "32", "--quiet", "--workers", "1"]
GIVEN = ["--expr", "sin(x_0)"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run in tmp_path, where a payload would leave PWNED; check nothing ran afterwards."""
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / "PWNED").exists()
    assert not hasattr(builtins, SENTINEL)


def invoke(*args, expect):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == expect, (result.output, result.exception)
    return result.output


def assert_names(message, field, token):
    assert field in message and token in message, message
    assert len(message) < 2000  # long texts are cut in messages


# --- the Python API ------------------------------------------------------------------------


@pytest.mark.parametrize("name, text, token", HOSTILE, ids=IDS)
def test_library_entry_points_refuse_hostile_text(name, text, token):
    for call in (program_of, parse_infix, lambda t: lambdify(t, 2)):
        with pytest.raises(ExpressionError) as caught:
            call(text)
        assert_names(str(caught.value), "expression ", token)
    for build, field in (
        (lambda: GenerateConfig.for_expressions(["sin(x_0)", text]), "expressions[1]="),
        (
            lambda: GenerateConfig(min_output_dim=2, max_output_dim=2, expressions=("x_0", text)),
            "expressions[1]=",
        ),  # fmt: skip
        (lambda: GenerateConfig.from_dict({"expressions": [text]}), "expressions[0]="),
    ):
        with pytest.raises(ExpressionError) as caught:
            build()
        assert_names(str(caught.value), field, token)


# --- the CLI: --expr and config files ------------------------------------------------------


@pytest.mark.parametrize("name, text, token", HOSTILE, ids=IDS)
def test_cli_expr_refuses_hostile_text_as_a_usage_error(name, text, token, tmp_path):
    output = invoke("generate", "--expr", text, "--n", 10, "--out", tmp_path / "s", expect=2)
    assert_names(output, "expressions[0]=", token)
    assert not (tmp_path / "s").exists()


def _config_file(tmp_path, fmt, settings):
    path = tmp_path / f"settings.{fmt}"
    if fmt == "toml":  # a JSON string is a TOML basic string
        lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        path.write_text("\n".join(lines) + "\n")
    else:  # JSON is YAML's flow style
        path.write_text(json.dumps(settings))
    return path


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json"])
@pytest.mark.parametrize("name, text, token", HOSTILE, ids=IDS)
def test_config_file_expressions_refuse_hostile_text(name, text, token, fmt, tmp_path):
    config = _config_file(tmp_path, fmt, {"n": 10, "expressions": ["x_0", text]})
    output = invoke("generate", "--config", config, "--out", tmp_path / "s", expect=2)
    assert_names(output, "expressions[1]=", token)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("fmt", ["toml", "yaml", "json"])
def test_config_file_expr_key_is_an_unknown_setting(fmt, tmp_path):
    config = _config_file(tmp_path, fmt, {"n": 10, "expr": [HOSTILE[1][1]]})
    output = invoke("generate", "--config", config, "--out", tmp_path / "s", expect=2)
    assert "unknown generation setting(s) ['expr']" in output


# --- stores edited by hand -----------------------------------------------------------------


@pytest.fixture(scope="module")
def given_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("given") / "given.zarr"
    invoke("generate", "--n", 8, "--out", path, *TINY, *GIVEN, expect=0)
    return path


@pytest.fixture(scope="module")
def sampled_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sampled") / "sampled.zarr"
    invoke("generate", "--n", 32, "--out", path, *TINY, expect=0)
    return path


def _with_header_expression(store, tmp_path, text):
    path = tmp_path / "edited.zarr"
    shutil.copytree(store, path)
    group = zarr.open_group(str(path), mode="r+")
    header = dict(group.attrs["s2gen"])
    header["config"] = {**header["config"], "expressions": [text]}
    group.attrs["s2gen"] = header
    return path


@pytest.mark.parametrize("name, text, token", HOSTILE, ids=IDS)
def test_a_store_header_with_hostile_expressions_is_a_bad_store(
    name, text, token, given_store, tmp_path
):
    path = _with_header_expression(given_store, tmp_path, text)
    for command in (["info", path], ["show", path, 0], ["validate", path]):
        output = invoke(*command, expect=1)
        assert_names(output, f"{path}: the generation config in its header", token)
        assert "expressions[0]=" in output
    output = invoke("generate", "--n", 8, "--out", path, *TINY, *GIVEN, expect=1)  # resume
    assert_names(output, "expressions[0]=", token)


def test_pretrain_on_a_store_with_a_hostile_header_fails_cleanly(given_store, tmp_path):
    name, text, token = HOSTILE[1]
    path = _with_header_expression(given_store, tmp_path, text)
    args = ["pretrain", "--data", path, "--out", tmp_path / "run", "--preset", "ci", "--steps", 1]
    output = invoke(*args, "--device", "cpu", "--quiet", expect=1)
    assert_names(output, "expressions[0]=", token)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_store_with_hostile_expr_rows_fails_validate_naming_each_row(sampled_store, tmp_path):
    path = tmp_path / "edited.zarr"
    shutil.copytree(sampled_store, path)
    group = zarr.open_group(str(path), mode="r+")
    expr = group["expr"][:]
    for row, (_, text, _) in enumerate(HOSTILE):
        expr[row, 0] = text
    group["expr"][:] = expr
    record_again(str(path), ["expr"])  # as an attacker would: the records are no signature

    output = invoke("validate", path, "--sample", 0, expect=1)
    for row, (_, _, token) in enumerate(HOSTILE):
        lines = [line for line in output.splitlines() if line.startswith(f"row {row}: output 0")]
        assert any("cannot evaluate expr" in line for line in lines), lines
        assert any(token in line for line in lines), (token, lines)
    assert f"row {len(HOSTILE)}:" not in output  # the rows left alone still pass
    assert "\x1b" not in output

    assert "rows:" in invoke("info", path, expect=0)  # info reads no expression text
    for row, (_, _, token) in enumerate(HOSTILE):
        output = invoke("show", path, row, expect=0)  # shown, never parsed into code
        assert_names(output, "not s2gen's expression language: ", token)
        assert "\x1b" not in output
    invoke("generate", "--n", 32, "--out", path, *TINY, expect=0)  # resume: nothing to do


# --- the package itself --------------------------------------------------------------------

FORBIDDEN = {
    "a builtin that runs text": r"(^|[^.\w])(eval|exec|compile|__import__)\s*\(",
    "sympy's text parsers": r"\b(parse_expr|sympify|parse_latex|parse_mathematica)\s*\(",
    "an import of sympy's text parsers": r"\bsympy\.parsing\b",
    "unpickling": r"\b(pickle|cPickle|dill|cloudpickle|joblib|marshal|shelve)\.(loads?|open)\s*\(",
    "unpickling by a reader": r"\bread_pickle\s*\(|\ballow_pickle\s*=\s*True",
    "a YAML loader that builds objects": r"\byaml\.(load|load_all|full_load|unsafe_load)\s*\(",
    "importing a module by name": r"\bimport_module\s*\(",
    "sympy's lambdify (it also takes text)": (
        r"\b(sp|sympy)\.lambdify\s*\(|from sympy[\w.]* import .*\blambdify\b"
    ),
}
ALLOWED = {  # (file, line) -> why it is safe
    (
        "s2gen/symbols/render.py",
        'fn = sp.lambdify(symbols, tree, modules=[TEMPORAL_FUNCTIONS, "numpy"])',
    ): "tree is grammar.parse's sympy tree (parse_infix), never text",
    (
        "s2gen/pretrain/__init__.py",
        "module = importlib.import_module(_LAZY[name])",
    ): "the module names come from the fixed _LAZY table, and only for names in it",
}


def _package_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield relative, number, line


def test_the_package_has_no_call_that_runs_data_as_code():
    patterns = {why: re.compile(pattern) for why, pattern in FORBIDDEN.items()}
    found, allowed_seen = [], set()
    for relative, number, line in _package_lines():
        for why, pattern in patterns.items():
            if pattern.search(line):
                key = (relative, line.strip())
                if key in ALLOWED:
                    allowed_seen.add(key)
                else:
                    found.append(f"{relative}:{number}: {why}: {line.strip()}")
    assert not found, "\n".join(found)
    assert allowed_seen == set(ALLOWED)  # no stale allowlist entry


def test_every_torch_load_in_the_package_reads_weights_only():
    calls = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"\btorch\.load\s*\(", text):
            depth, end = 1, match.end()
            while depth:  # the call's arguments, across lines
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            arguments = text[match.end() : end - 1]
            assert re.search(r"\bweights_only\s*=\s*True\b", arguments), (path, arguments)
            calls += 1
    assert calls >= 2  # the pretraining checkpoint and the OATS generator
