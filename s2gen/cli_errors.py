"""The one place where user errors become one-line command-line messages.

Every ``s2gen`` command runs inside ``ErrorGroup.invoke``: an exception that
is the user's doing (a bad setting, expression, store, file or path, a full
disk, too little memory) becomes one line naming the parameter and the fix,
with exit code 2 (usage: change the command) or 1 (runtime: the data, the
disk or the machine). Anything else is a bug and keeps its traceback.
Commands may still raise ``click.ClickException`` themselves.
"""

import json
import linecache
import tomllib
from pathlib import Path

import click

RUNTIME = 1  # click's usage errors exit with 2

_PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


class RuntimeFailure(click.ClickException):
    """A one-line runtime error (exit code 1)."""

    exit_code = RUNTIME


def _raised_by_s2gen(exc: BaseException) -> bool:
    """True when a ``raise`` statement in s2gen raised ``exc`` (a message written for users).

    An error that numpy or another library raised, even one called from
    s2gen code, is not: it is a bug, and keeps its traceback.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if not str(frame.f_globals.get("__name__", "")).startswith("s2gen"):
        return False
    line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
    return line.lstrip().startswith("raise")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def user_error(exc: BaseException, command: str | None = None) -> click.ClickException | None:
    """The message and exit code of a user error, or None if ``exc`` is a bug.

    ``command`` is the subcommand that raised it: an expression error is the
    user's ``--expr`` in ``generate``, and a stored expression elsewhere.
    """
    from s2gen.generate import DiskFullError
    from s2gen.generators.pairs import GenerationError
    from s2gen.memory import NotEnoughMemory
    from s2gen.store import StoreError
    from s2gen.symbols.parse import ExpressionError

    if isinstance(exc, ExpressionError) and command == "generate":
        return click.BadParameter(_one_line(exc), param_hint="--expr")
    if isinstance(exc, NotEnoughMemory):
        return click.BadParameter(_one_line(exc), param_hint=exc.parameter)
    if isinstance(exc, GenerationError):
        return click.UsageError(_one_line(exc))
    if isinstance(exc, DiskFullError):
        return RuntimeFailure(_one_line(exc.strerror))
    if isinstance(exc, (StoreError, ExpressionError)):
        return RuntimeFailure(_one_line(exc))
    if isinstance(exc, _PATH_ERRORS) and exc.filename is not None:
        return RuntimeFailure(f"{exc.filename}: {exc.strerror or exc}; check the path")
    if isinstance(exc, (json.JSONDecodeError, tomllib.TOMLDecodeError)):
        return click.UsageError(f"cannot parse the file: {_one_line(exc)}")
    if isinstance(exc, (ValueError, ImportError)) and _raised_by_s2gen(exc):
        return RuntimeFailure(_one_line(exc))
    return None


class ErrorGroup(click.Group):
    """A click group whose subcommands report user errors in one line (``user_error``)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = user_error(exc, ctx.invoked_subcommand)
            if message is None:
                raise
            raise message from exc


def read_config_file(path: str) -> dict:
    """Settings from a TOML, YAML or JSON file; a mapping at the top level.

    Raises click.BadParameter (for ``--config``) naming the line of a syntax
    error, or what the top level holds instead of a mapping.
    """
    text = Path(path).read_text()
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = _load_yaml(text)
        else:
            data = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"cannot parse {path}: {_one_line(exc)}", param_hint="--config"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.BadParameter(
            f"{path} holds a {type(data).__name__}; a config file is a mapping of settings "
            'such as {"n": 1000000, "length": 256}',
            param_hint="--config",
        )
    return data


def _load_yaml(text: str):
    try:
        import yaml
    except ImportError as exc:
        raise click.BadParameter(
            "YAML configs need PyYAML: pip install pyyaml (or use TOML/JSON)",
            param_hint="--config",
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"YAML {problem}{where}") from exc
