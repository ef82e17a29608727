"""The ``s2gen`` command: a thin click layer over the library.

Each command builds a config, calls one library function and prints a short
summary. Torch is imported only inside the commands that train.
"""

import json
import re
import sys

import click
from click.core import ParameterSource

from s2gen.cli_errors import ErrorGroup, read_config_file
from s2gen.config import AUGMENTATIONS, SAMPLER_PRESETS, SAMPLERS, GenerateConfig, StoreConfig
from s2gen.evaluate.cli import evaluate, finetune
from s2gen.oats.cli import oats
from s2gen.pretrain.cli import embed, pretrain
from s2gen.symbols.operators import OPERATORS, TEMPORAL_WEIGHTS


class Count(click.ParamType):
    """A positive whole number written as 1e7, 10_000_000 or 10000000."""

    name = "count"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            try:
                number = int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    self.fail(
                        f"{value!r} is not a number; write it like 1e7, 10_000_000 or 10000000"
                    )
            if isinstance(number, float):
                if not number.is_integer():
                    self.fail(f"{value!r} is not a whole number of pairs")
                number = int(number)
        if number <= 0:
            self.fail(f"{value!r} must be at least 1")
        return number


# CLI option name -> GenerateConfig field
GENERATION_OPTIONS = {
    "length": "length",
    "min_input_dim": "min_input_dim",
    "max_input_dim": "max_input_dim",
    "min_output_dim": "min_output_dim",
    "max_output_dim": "max_output_dim",
    "seed": "seed",
    "dtype": "dtype",
    "mixture_prob": "mixture_prob",
    "mixture_components": "mixture_max_components",
    "mixture_mode": "mixture_mode",
    "arma_max_p": "arma_max_p",
    "arma_max_q": "arma_max_q",
    "arma_burn_in": "arma_burn_in",
    "input_scale_max": "input_scale_max",
    "binary_ops_offset": "binary_ops_offset",
    "max_unary_ops": "max_unary_ops",
    "const_leaf_prob": "const_leaf_prob",
    "max_abs_output": "max_abs_output",
    "graph": "graph",
    "min_nodes": "min_nodes",
    "max_nodes": "max_nodes",
}
STORE_OPTIONS = ("chunk_rows", "shard_rows", "compressor")
# CLI option -> the sampler families it shapes (an option for a family the mix lacks is an error;
# --mixture-prob needs the paper's mix itself)
FAMILY_OPTIONS = {
    "mixture_components": ("mixture",),
    "mixture_mode": ("mixture",),
    "arma_max_p": ("arma",),
    "arma_max_q": ("arma",),
    "arma_burn_in": ("arma", "sarima"),
}
# config field -> the option that sets it, for the hint of a config error
FIELD_OPTIONS = {
    **{field: "--" + option.replace("_", "-") for option, field in GENERATION_OPTIONS.items()},
    **{field: "--" + field.replace("_", "-") for field in STORE_OPTIONS},
    "expressions": "--expr",
    "operator_weights": "--operators",
    "sampler_weights": "--samplers",
}


def _rendered_name(op) -> str:
    """The name an operator has in rendered expressions: tdiff, tlag4, atan, Abs."""
    head, _, tail = op.infix
    name = head[:-1]
    if not head.endswith("(") or not name.isidentifier():
        return op.name
    return name + "".join(ch for ch in tail if ch.isdigit())


# rendered name -> registry name, for the operators whose two spellings differ
OPERATOR_ALIASES = {
    _rendered_name(op): op.name for op in OPERATORS if _rendered_name(op) != op.name
}


def operator_names() -> str:
    """Every operator name for messages and help, with its rendered spelling: 'diff (tdiff)'."""
    return ", ".join(
        op.name if _rendered_name(op) == op.name else f"{op.name} ({_rendered_name(op)})"
        for op in OPERATORS
    )


def _operator_weights(weights: dict[str, float]) -> dict[str, float]:
    """Registry names for a mapping that may use rendered names; unknown names are refused."""
    known = {op.name for op in OPERATORS}
    unknown = sorted(set(weights) - known - set(OPERATOR_ALIASES))
    if unknown:
        raise click.BadParameter(
            f"unknown operator(s) {unknown}; known are {operator_names()}",
            param_hint="--operators",
        )
    return {OPERATOR_ALIASES.get(name, name): w for name, w in weights.items()}


def _parse_weights(text: str, param_hint: str, example: str) -> dict[str, float]:
    """NAME=WEIGHT,NAME=WEIGHT text as a dict."""
    weights = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(
                f"{item!r} is not NAME=WEIGHT; write e.g. {example!r}", param_hint=param_hint
            )
    return weights


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def build_generation(ctx: click.Context, options: dict) -> tuple[GenerateConfig, dict, int | None]:
    """(GenerateConfig, explicit store options, n) from a config file and flags."""
    settings: dict = {}
    store_options: dict = {}
    n = None
    if options.get("config_file"):
        data = read_config_file(options["config_file"])
        n = data.pop("n", None)
        if n is not None:
            n = Count().convert(n, None, ctx)
        store_options = {k: data.pop(k) for k in STORE_OPTIONS if k in data}
        settings = data
    for option, fieldname in GENERATION_OPTIONS.items():
        if _given(ctx, option):
            settings[fieldname] = options[option]
    if isinstance(settings.get("operator_weights"), dict):
        settings["operator_weights"] = _operator_weights(settings["operator_weights"])
    if options.get("temporal_ops") or options.get("operators"):
        weights = dict(settings.get("operator_weights", {}))
        if options.get("temporal_ops"):
            weights.update(TEMPORAL_WEIGHTS)
        given = _parse_weights(options["operators"], "--operators", "div=0.5,tdiff=1")
        weights.update(_operator_weights(given))
        settings["operator_weights"] = weights
    if options.get("sampler_preset"):
        settings["sampler_weights"] = dict(SAMPLER_PRESETS[options["sampler_preset"]])
    if options.get("samplers"):
        settings["sampler_weights"] = _parse_weights(
            options["samplers"], "--samplers", "arma=1,kernel_synth=0.5"
        )
    if options.get("augment"):
        settings["augment"] = _parse_weights(
            options["augment"], "--augment", "jitter=0.3,scaling=0.2"
        )
    expressions = tuple(options.get("expr") or ()) or tuple(settings.pop("expressions", ()))
    for option in STORE_OPTIONS:
        if _given(ctx, option):
            store_options[option] = options[option]
    if _given(ctx, "n"):
        n = options["n"]
    try:
        if expressions:
            config = GenerateConfig.for_expressions(expressions, **settings)
        else:
            config = GenerateConfig.from_dict(settings)
        StoreConfig(**store_options)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=_option_named_in(str(exc))) from exc
    _check_family_options(ctx, config)
    return config, store_options, n


def _check_family_options(ctx: click.Context, config: GenerateConfig) -> None:
    """Refuse an option that shapes series ``config``'s mix never draws."""
    weights = config.family_weights()
    drawn = ", ".join(f"{k}={w:g}" for k, w in weights.items() if w > 0)
    fix = "weigh the families in --samplers"
    if not config.graph:
        fix = "add --sampler-preset paper (SymTime's mixture/ARMA mix) or " + fix
    if _given(ctx, "mixture_prob") and (config.sampler_weights or config.graph):
        raise click.BadParameter(
            f"it is the share of mixture series in the paper's mix, not the mix here ({drawn}); "
            + fix,
            param_hint="--mixture-prob",
        )
    for option, families in FAMILY_OPTIONS.items():
        if _given(ctx, option) and not any(weights.get(f, 0.0) > 0 for f in families):
            raise click.BadParameter(
                f"it shapes {' and '.join(families)} series, which this mix ({drawn}) never "
                f"draws; {fix}",
                param_hint="--" + option.replace("_", "-"),
            )


def generation_config_file(path: str, param_hint: str) -> GenerateConfig:
    """The generation config of a ``s2gen generate --config`` file.

    Its ``n`` and store layout (``chunk_rows`` ...) are left aside: they never
    change a pair. Raises click.BadParameter for ``param_hint`` naming the file.
    """
    try:
        settings = read_config_file(path)
        for key in ("n", *STORE_OPTIONS):
            settings.pop(key, None)
        if isinstance(settings.get("operator_weights"), dict):
            settings["operator_weights"] = _operator_weights(settings["operator_weights"])
        expressions = tuple(settings.pop("expressions", ()))
        if expressions:
            return GenerateConfig.for_expressions(expressions, **settings)
        return GenerateConfig.from_dict(settings)
    except (click.BadParameter, ValueError) as exc:
        text = exc.message if isinstance(exc, click.BadParameter) else str(exc)
        raise click.BadParameter(f"{path}: {text}", param_hint=param_hint) from exc


def _option_named_in(message: str) -> str | None:
    """The option of the config field a message starts with ("length=1 is invalid" -> --length)."""
    match = re.match(r"\s*([a-z_]+)", message)
    return FIELD_OPTIONS.get(match.group(1)) if match else None


@click.group(cls=ErrorGroup)
@click.version_option(package_name="s2gen")
def main() -> None:
    """Series-symbol (S2) data: generate stores, inspect them, train on them."""


@main.command()
@click.option("--n", type=Count(), help="Number of pairs, e.g. 1e7 or 10_000_000.")
@click.option("--out", "out", required=True, help="Store path (a directory; or a URL zarr opens).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML/YAML/JSON file with settings (and n); flags override it.",
)
@click.option("--length", type=int, default=256, show_default=True, help="Points per series.")
@click.option(
    "--min-input-dim",
    type=int,
    default=1,
    show_default=True,
    help="Fewest input channels M of a pair (M ~ U{min..max}).",
)
@click.option(
    "--max-input-dim",
    type=int,
    default=1,
    show_default=True,
    help="Most input channels (at most 16: x_0..x_15); the width of x.",
)
@click.option(
    "--min-output-dim",
    type=int,
    default=1,
    show_default=True,
    help="Fewest outputs N of a pair (N ~ U{min..max}, all on the same X).",
)
@click.option(
    "--max-output-dim",
    type=int,
    default=1,
    show_default=True,
    help="Most outputs (at most 64); the width of y.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed of the row seeds.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Store dtype of x and y; y is computed on x as stored.",
)
@click.option(
    "--mixture-prob",
    type=float,
    default=0.3,
    show_default=True,
    help="The paper's mix (--sampler-preset paper): probability that an input channel is a "
    "mixture series (else ARMA).",
)
@click.option(
    "--mixture-components",
    type=int,
    default=5,
    show_default=True,
    help="Mixture components k ~ U{1..this}.",
)
@click.option(
    "--mixture-mode",
    type=click.Choice(["mixture", "segments"]),
    default="mixture",
    show_default=True,
    help="mixture: each time step draws its component; segments: contiguous blocks.",
)
@click.option(
    "--arma-max-p", type=int, default=3, show_default=True, help="AR order p ~ U{1..this}."
)
@click.option(
    "--arma-max-q", type=int, default=3, show_default=True, help="MA order q ~ U{1..this}."
)
@click.option(
    "--arma-burn-in",
    type=int,
    default=256,
    show_default=True,
    help="ARMA and SARIMA steps simulated and dropped before the stored window.",
)
@click.option(
    "--input-scale-max",
    type=float,
    default=16.0,
    show_default=True,
    help="X is scaled by U(0, this) after z-scoring; 0 turns it off.",
)
@click.option(
    "--binary-ops-offset",
    type=int,
    default=3,
    show_default=True,
    help="Binary operators per output ~ U{0..M+this}.",
)
@click.option(
    "--max-unary-ops",
    type=int,
    default=5,
    show_default=True,
    help="Unary operators per output ~ U{0..this}.",
)
@click.option(
    "--const-leaf-prob",
    type=float,
    default=0.25,
    show_default=True,
    help="Probability that a leaf beyond the first M is a constant (else a variable).",
)
@click.option(
    "--operators",
    default="",
    help="Operator weights, e.g. 'div=1,tan=0,tdiff=1'; names as in the registry or as "
    f"rendered: {operator_names()}.",
)
@click.option(
    "--temporal-ops",
    is_flag=True,
    help="Include the temporal operators (tdiff, tcumsum, tlag, tmavg) in sampled expressions.",
)
@click.option(
    "--samplers",
    default="",
    help=f"Excitation family weights, e.g. 'arma=1,kernel_synth=0.5'; families: "
    f"{', '.join(SAMPLERS)}. Default: sarima=1 (KernelSynth roots for --graph).",
)
@click.option(
    "--sampler-preset",
    type=click.Choice(sorted(SAMPLER_PRESETS)),
    default=None,
    help="A named family mix: sarima (the default; it transferred best), paper (SymTime's "
    "mixture/ARMA mix, --mixture-prob), reference (the reference generator's), all.",
)
@click.option(
    "--graph",
    is_flag=True,
    help="Graph pairs: a random DAG whose inputs are KernelSynth draws (unless --samplers or a "
    "--sampler-preset other than paper) and "
    "whose other nodes are expressions of their parents; outputs are nodes, stored as "
    "expressions of the inputs. Needs --min-nodes >= max inputs + max outputs.",
)
@click.option("--min-nodes", type=int, default=4, show_default=True, help="Graph nodes, at least.")
@click.option("--max-nodes", type=int, default=8, show_default=True, help="Graph nodes, at most.")
@click.option(
    "--augment",
    default="",
    help=f"Augment input channels before f: probability per augmentation, e.g. "
    f"'jitter=0.3,time_warp=0.2'; augmentations: {', '.join(AUGMENTATIONS)}. The store records "
    "each channel's in the array 'augment'.",
)
@click.option(
    "--expr",
    multiple=True,
    help="A given output expression over x_0..x_15 (repeatable; see s2gen.symbols.grammar), e.g. "
    "'sin(x_0) + 0.5*x_1': only excitations are drawn. sqrt and log act on |u|.",
)
@click.option(
    "--max-abs-output",
    type=float,
    default=1e4,
    show_default=True,
    help="A pair is redrawn if any |y| exceeds this (at most 6e4, float16's range).",
)
@click.option(
    "--chunk-rows",
    type=int,
    default=1024,
    show_default=True,
    help="Rows per chunk, the unit of reading.",
)
@click.option(
    "--shard-rows",
    type=int,
    default=16384,
    show_default=True,
    help="Rows per shard (a multiple of --chunk-rows), the unit of writing, of work and of "
    "memory: a worker holds one shard's x and y (at most 1 GiB).",
)
@click.option(
    "--compressor",
    type=click.Choice(["lz4", "zstd", "none"]),
    default="lz4",
    show_default=True,
    help="Codec of the numeric arrays: lz4 (fast), zstd (smaller) or none.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Local worker processes [default: all cores].",
)
@click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address (tcp://host:8786): run shards on that cluster.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing store of another config.")
@click.option(
    "--verify",
    is_flag=True,
    help="Check every shard's checksum (not only its size) and regenerate damaged shards; "
    "upgrades a format-1 store by checking each shard against a regeneration.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def generate(ctx: click.Context, **options) -> None:
    """Generate a store of series-symbol pairs (resumable; parallel over shards)."""
    from s2gen.generate import Interrupted, generate_store

    config, store_options, n = build_generation(ctx, options)
    if n is None:
        raise click.BadParameter("give the number of pairs, e.g. --n 1e6", param_hint="--n")
    announce_compile(options["quiet"])
    try:
        summary = generate_store(
            options["out"],
            config,
            n,
            store_options,
            workers=options["workers"],
            scheduler=options["scheduler"],
            overwrite=options["overwrite"],
            progress=not options["quiet"],
            verify=options["verify"],
        )
    except Interrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    click.echo(summary.line())


def announce_compile(quiet: bool = False) -> None:
    """Say on stderr that the kernels compile now, when the Numba cache is cold."""
    from s2gen.kernels.cache import COMPILE_NOTICE, kernels_cached

    if not quiet and not kernels_cached():
        click.echo(COMPILE_NOTICE, err=True)


def _open(path: str):
    from s2gen.store import open as open_store

    return open_store(path, allow_incomplete=True)


@main.command()
@click.argument("path")
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Rows read to count operators (the rest of the facts use every row).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(path: str, sample: int, as_json: bool) -> None:
    """Rows, dims, samplers, operators, acceptance and size of a store."""
    from s2gen.inspect import summary

    facts = summary(_open(path), sample)  # a damaged shard is a StoreError: one line, exit 1
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    for key, value in facts.items():
        if key == "bytes_on_disk" and value is not None:
            value = f"{value:,} ({value / 1e9:.2f} GB)"
        elif key == "acceptance_rate" and value is not None:
            value = f"{value:.1%} of excitation draws"
        click.echo(f"{key:>22}: {value}")


@main.command(context_settings={"ignore_unknown_options": True})  # INDEX may be -1
@click.argument("path")
@click.argument("index", type=int)
@click.option(
    "--plot",
    "plot_path",
    default=None,
    help="Also draw x and y into this PNG (needs matplotlib: pip install 's2gen[plot]').",
)
def show(path: str, index: int, plot_path: str | None) -> None:
    """Print pair INDEX of a store (negative counts from the end: -1 is the last row)."""
    from s2gen.inspect import describe_pair, plot_pair

    view = _open(path)
    n = len(view)
    if not -n <= index < n:
        raise click.BadParameter(
            f"{index} is outside the store's {n:,} rows: use 0..{n - 1}, or -{n}..-1 to count "
            "from the end",
            param_hint="INDEX",
        )
    click.echo(describe_pair(view, index))
    if plot_path:
        plot_pair(view, index, plot_path)
        click.echo(f"plot written to {plot_path}")


@main.command()
@click.argument("path")
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Random rows to check; 0 checks every row.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the row sample.")
def validate(path: str, sample: int, seed: int) -> None:
    """Check a store's invariants; exit 1 naming each failing row."""
    from s2gen.inspect import validate as run_validation

    _open(path)
    announce_compile()
    report = run_validation(path, None if sample == 0 else sample, seed)
    for row, message in report.failures:
        click.echo(f"{'store' if row is None else f'row {row}'}: {message}", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    status = "OK" if report.ok else f"FAILED ({len(report.failures)} problems)"
    click.echo(
        f"{status}: {report.rows_checked} rows and {report.shards_checked} shards checked in {path}"
    )
    if not report.ok:
        sys.exit(1)


for command in (pretrain, embed, oats, evaluate, finetune):  # torch loads when one runs
    main.add_command(command)
