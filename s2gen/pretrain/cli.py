"""Click commands ``pretrain`` and ``embed`` (registered on the ``s2gen`` group).

A thin layer: build a ``PretrainConfig``, call one library function, print a
short summary. Torch is imported inside the commands, so importing this module
(and starting ``s2gen generate``) stays fast.
"""

import os
import warnings
from pathlib import Path

import click

from s2gen.pretrain.config import (
    GENERATE_LENGTH,
    GENERATE_PRESETS,
    OBJECTIVE_NAMES,
    PRESET_NAMES,
    PretrainConfig,
    read_settings,
)
from s2gen.pretrain.options import architecture_options, check_architecture, note_random_base


def build_config(preset: str, config_file: str | None, overrides: dict) -> PretrainConfig:
    """The preset, then the settings of ``config_file``, then the flags that were given."""
    settings = {}
    if config_file:
        try:
            settings = read_settings(config_file)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--config") from exc
    settings.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return PretrainConfig.preset(preset, **settings)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc


def parse_shares(text: str) -> tuple[float, ...]:
    """``--data-shares 0.9,0.1`` -> (0.9, 0.1); the ranges are the config's to check."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a list of numbers; give one share per --data, e.g. 0.9,0.1",
            param_hint="--data-shares",
        ) from None


@click.command()
@click.option(
    "--data",
    "data",
    multiple=True,
    help="Repeatable. An s2gen store, or real unlabeled series: a folder of UCR/UEA sets (their "
    "_TRAIN files only), a .ts/.tsv/.txt file, a .csv (each numeric column a series) or a .npy "
    "((n, L): n series). Real series are windowed like store rows, shorter ones resized.",
)
@click.option(
    "--data-shares",
    "data_shares",
    help="Comma-separated expected share of each training batch from each --data source, in "
    "the order given, e.g. 0.9,0.1 (normalised) [default: by size, every chunk once an epoch].",
)
@click.option(
    "--generate",
    "generate",
    help="Instead of --data: train on fresh pairs generated on the fly, each once (no store). "
    f"A sampler preset ({', '.join(GENERATE_PRESETS)}; length {GENERATE_LENGTH}) or a "
    "TOML/YAML/JSON file of `s2gen generate --config` settings (its n is left aside).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory (metrics, checkpoints).",
)
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    default="small",
    show_default=True,
    help="ci: a minute on 2 CPU cores; small: CPU, minutes to an hour; base: SymTime base, GPU.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML/YAML/JSON file of PretrainConfig settings (loss weights, dropout, crops, ...) "
    "on top of the preset; flags override it. A run's config.json is such a file.",
)
@click.option(
    "--objective",
    help=f"Objective(s), '+'-joined: {', '.join(OBJECTIVE_NAMES)} [s2+timedrl; ts2vec with "
    "--backbone dilated-cnn]. s2 needs a store; ts2vec runs alone.",
)
@architecture_options
@click.option("--steps", type=click.IntRange(min=1), help="Optimiser steps [preset].")
@click.option("--batch-size", type=click.IntRange(min=2), help="Samples per step and process.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--window", type=click.IntRange(min=1), help="Points per window [preset: 256].")
@click.option("--workers", type=click.IntRange(min=0), help="DataLoader workers per process.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of init, masks and data order.")
@click.option(
    "--use-inputs", is_flag=True, default=None, help="Also train on input channels (MTS only)."
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option("--threads", type=click.IntRange(min=1), help="Torch CPU threads [torch default].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option(
    "--oats",
    "oats_generator",
    default=None,
    help="OATS: a generator checkpoint (s2gen oats train-generator --window W); TSIS keeps "
    "the top half of each batch and guided samples of it fill the rest.",
)
@click.option(
    "--oats-ref",
    multiple=True,
    help="OATS reference set, repeatable: a store, a shipped classification set name (its TRAIN "
    "split), a .ts/.tsv/.txt TRAIN file, a folder of UCR/UEA sets, a .npy or .csv; real series "
    "are resized to the window [default: the store's reference split].",
)
@click.option(
    "--explore-prob",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="OATS: probability that a step re-scores its whole batch.",
)
@click.option(
    "--oats-after",
    type=click.IntRange(min=0),
    default=None,
    help="OATS: first augmented step [default: end of warm-up].",
)
@click.option(
    "--oats-mix",
    type=click.Choice(["replace", "add"]),
    default="replace",
    show_default=True,
    help="OATS: generated rows replace the bottom half (paper) or are added to the whole batch.",
)
@click.option(
    "--oats-weight",
    type=click.FloatRange(0, min_open=True),
    default=0.5,
    show_default=True,
    help="OATS: weight of a generated row in the masked-series loss with --oats-mix add.",
)
@click.option(
    "--mlflow",
    "mlflow_uri",
    default=None,
    help="MLflow tracking URI (sqlite:///mlflow.db locally; needs s2gen[track]): log the "
    "config, the metrics of every logged step and the checkpoints.",
)
@click.option(
    "--register",
    "register_name",
    default=None,
    help="With --mlflow: register the run's checkpoint (best.pt) as a new version of this "
    "model; read it back with --checkpoint models:/NAME/VERSION.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pretrain(
    data,
    data_shares,
    generate,
    out_dir,
    preset,
    config_file,
    objective,
    architecture,
    steps,
    batch_size,
    lr,
    window,
    workers,
    seed,
    use_inputs,
    device,
    threads,
    resume,
    oats_generator,
    oats_ref,
    explore_prob,
    oats_after,
    oats_mix,
    oats_weight,
    mlflow_uri,
    register_name,
    quiet,
) -> None:
    """Pretrain a series encoder on stores and real series (S2: against expressions, SymTime-style).

    Writes config.json, run.json, metrics.jsonl, last.pt and best.pt to --out
    (and mlflow.json, the MLflow run's id, with --mlflow); runs under torchrun
    (DDP) as is, e.g. `torchrun --nproc_per_node 2 -m s2gen pretrain ...`.
    """
    if bool(data) == bool(generate):
        raise click.UsageError(
            "give either --data (stores, real series) or --generate (fresh pairs), not "
            + ("both" if data else "neither")
        )
    overrides = {
        "objective": objective,
        **architecture,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "window": window,
        "num_workers": workers,
        "seed": seed,
        "use_inputs": use_inputs,
        "data_shares": None if data_shares is None else parse_shares(data_shares),
    }
    cfg = build_config(preset, config_file, overrides)
    note_random_base(cfg.to_dict())
    try:
        import torch

        from s2gen.pretrain.train import run
    except ImportError as exc:
        raise click.ClickException(
            f"{exc}; pretraining needs torch: pip install 's2gen[train]'"
        ) from exc
    from s2gen.store import StoreError

    if threads:
        torch.set_num_threads(threads)
    from s2gen.memory import check_pretrain

    check_pretrain(cfg, device)  # NotEnoughMemory names --batch-size and what fits
    if oats_ref and not oats_generator:
        raise click.BadParameter("--oats-ref needs --oats GEN.pt", param_hint="--oats-ref")
    if oats_generator and generate:
        raise click.BadParameter(
            "--oats scores the rows of one store; it does not run with --generate: give --data",
            param_hint="--oats",
        )
    if oats_generator and (len(data) != 1 or not cfg.needs_symbols):
        raise click.BadParameter(
            "--oats scores the s2 objective's masked-series loss on one store: give one --data "
            "and an --objective with s2",
            param_hint="--oats",
        )
    tracker = _tracker(mlflow_uri, register_name, out_dir)
    try:
        hook = None
        if oats_generator:
            from s2gen.oats.wiring import oats_hook_from_options

            hook = oats_hook_from_options(
                cfg,
                data[0],
                oats_generator,
                ref=list(oats_ref),
                explore_prob=explore_prob,
                after=oats_after,
                mix=oats_mix,
                generated_weight=oats_weight,
            )
        sources = [generated_source(generate, cfg)] if generate else list(data)
        final = run(
            cfg,
            sources,
            out_dir,
            resume=resume,
            device=device,
            batch_hook=hook,
            progress=not quiet,
            sinks=(tracker,) if tracker else (),
        )
        version = _log_outputs(tracker, out_dir, register_name) if tracker else None
    except BaseException as exc:
        if tracker:
            tracker.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if isinstance(exc, (ValueError, ImportError, StoreError)):
            raise click.ClickException(error_message(exc)) from exc
        raise
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun, rank 0 reports
        return
    shown = ("loss", "val_loss", "val_t2s_top1", "val_t2s_top10", "val_mlm_acc", "val_inst")
    shown += ("val_mae", "val_ts2vec")
    summary = ", ".join(f"{k} {final[k]:.4g}" for k in shown if k in final)
    click.echo(f"pretrained {cfg.steps} steps into {out_dir}: {summary}")
    if version is not None:
        click.echo(f"registered models:/{register_name}/{version} ({mlflow_uri})")


def _tracker(mlflow_uri: str | None, register_name: str | None, out_dir: str):
    """The MLflow tracker of rank 0 (None elsewhere or without --mlflow, which says so once)."""
    from s2gen import tracking

    if register_name and not mlflow_uri:
        raise click.BadParameter("--register NAME needs --mlflow URI", param_hint="--register")
    if int(os.environ.get("RANK", 0)) != 0:
        return None
    if not mlflow_uri:
        click.echo(tracking.enable_hint("pretrain"), err=True)
        return None
    from s2gen.pretrain.tracked import pretraining_tracker

    if register_name:
        try:
            tracking.check_name(register_name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--register") from exc
    try:
        return pretraining_tracker(mlflow_uri, out_dir)
    except (ImportError, tracking.TrackingError) as exc:
        raise click.ClickException(str(exc)) from exc


def _log_outputs(tracker, out_dir: str, register_name: str | None) -> str | None:
    from s2gen.pretrain.tracked import log_outputs

    version = log_outputs(tracker, out_dir, register_name)
    tracker.end("FINISHED")
    return version


def generated_source(generate: str, cfg: PretrainConfig):
    """The ``GeneratorSource`` of ``--generate``: a preset name, else a generation config file."""
    from s2gen.pretrain.generated import GeneratorSource, preset_config

    if generate in GENERATE_PRESETS:
        return GeneratorSource(preset_config(generate), cfg, generate)
    if not Path(generate).is_file():
        raise click.BadParameter(
            f"{generate!r} is no preset ({', '.join(GENERATE_PRESETS)}) and no file; give a "
            "preset or a generation config file (TOML/YAML/JSON, as `s2gen generate --config`)",
            param_hint="--generate",
        )
    from s2gen.cli import generation_config_file

    return GeneratorSource(generation_config_file(generate, "--generate"), cfg, generate)


def error_message(exc: Exception) -> str:
    """The error's own message, without the traceback text a DataLoader worker wraps it in."""
    text = str(exc).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]  # "module.ErrorType: message"
    return last.split(": ", 1)[1] if ": " in last else last


def _read_series(path: Path):
    """(n, L) float32 series from a .npy or .csv file; anything else is refused by name."""
    import numpy as np

    def bad(problem: str) -> click.BadParameter:
        return click.BadParameter(
            f"{path} {problem}; give numbers only, one series per row, every row as long "
            "(.npy: a numeric (n, L) array; .csv: comma-separated)",
            param_hint="--input",
        )

    if path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as exc:  # object arrays, or not a .npy file at all
            raise bad(f"cannot be read as a numeric array ({exc})") from exc
    elif path.suffix == ".csv":
        try:
            with warnings.catch_warnings():  # an empty file: reported below
                warnings.simplefilter("ignore", UserWarning)
                data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError as exc:  # text, ragged rows
            raise bad(f"is not a numeric table ({exc})") from exc
    else:
        raise click.BadParameter(f"{path}: give a .npy or .csv file", param_hint="--input")
    if data.dtype.kind not in "biuf":
        raise bad(f"holds {data.dtype} values")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.size == 0:
        raise bad(f"holds shape {data.shape}")
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        listed = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
        raise click.BadParameter(
            f"{path} has NaN or inf in {rows.size} row(s) (0-based: {listed}); fill or drop "
            "the gaps first (embeddings of such rows would be NaN)",
            param_hint="--input",
        )
    return data.astype(np.float32)


@click.command()
@click.option(
    "--checkpoint",
    "checkpoint_path",
    required=True,
    help="last.pt or best.pt of a pretraining run, or a registered model models:/NAME/VERSION.",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Series as .npy (n, L) or .csv (one series per row, comma-separated).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    help="Embeddings as .npy or .csv: (n, dim); with --level patch (n, tokens, d), .npy only.",
)
@click.option(
    "--level",
    type=click.Choice(["instance", "patch"]),
    default="instance",
    show_default=True,
    help="instance: one embedding per series; patch: the state of every token (patch, or "
    "time step for a per-step backbone) of the resized series.",
)
@click.option(
    "--mlflow",
    "mlflow_uri",
    default=None,
    help="Tracking URI a models:/ checkpoint is read from [default: $MLFLOW_TRACKING_URI].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--resize",
    type=click.Choice(["linear", "none"]),
    default="linear",
    show_default=True,
    help="linear: resample every series to the encoder's window; none: keep its length "
    "(the last window points, left-padded to whole patches).",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@architecture_options
def embed(
    checkpoint_path,
    input_path,
    out_path,
    level,
    mlflow_uri,
    batch_size,
    resize,
    device,
    architecture,
) -> None:
    """Embed series with a pretrained series encoder (resized to its window by default)."""
    import tempfile

    import numpy as np

    out = Path(out_path)
    if out.suffix not in (".npy", ".csv"):
        raise click.BadParameter(f"{out}: give a .npy or .csv path", param_hint="--out")
    if level == "patch" and out.suffix != ".npy":
        raise click.BadParameter(
            f"{out}: patch-level embeddings are (n, tokens, d): give a .npy path",
            param_hint="--out",
        )
    series = _read_series(Path(input_path))
    from s2gen.memory import check_batch, encoder_bytes
    from s2gen.pretrain import checkpoint
    from s2gen.pretrain.encoder import load_encoder
    from s2gen.pretrain.train import resolve_device
    from s2gen.tracking import resolve_checkpoint

    with tempfile.TemporaryDirectory(prefix="s2gen-registry-") as cache:
        try:
            local = resolve_checkpoint(checkpoint_path, mlflow_uri, cache)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--checkpoint") from exc
        except ImportError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            cfg = checkpoint.config_of(checkpoint.load(local))
            encoder = load_encoder(
                local, resolve_device(device), architecture.get("backbone_weights")
            )
        except (ValueError, ImportError) as exc:
            raise click.ClickException(str(exc)) from exc
        check_architecture(encoder.config, architecture, checkpoint_path)
    check_batch(lambda b: encoder_bytes(cfg, b, train=False), min(batch_size, len(series)))
    try:
        emb = encoder.embed(series, batch_size=batch_size, resize=resize, level=level)
    except ValueError as exc:
        raise click.ClickException(f"--input {input_path}: {exc}") from exc
    if out.suffix == ".npy":
        np.save(out, emb)
    else:
        np.savetxt(out, emb, delimiter=",", fmt="%.7g")
    click.echo(f"embedded {len(series)} series of length {series.shape[1]} -> {out} {emb.shape}")
