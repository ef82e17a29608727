"""``s2gen evaluate`` and ``s2gen finetune``: thin click commands.

Torch, scikit-learn and ``s2gen.pretrain`` are imported inside the commands,
so importing this module (as ``s2gen.cli`` does) stays light.
"""

import logging
from pathlib import Path

import click
from click.core import ParameterSource

from s2gen.pretrain.options import architecture_options, note_random_base

DATASET_HELP = "dataset name (shipped in an installed package) or path; repeatable"
RESIZE_HELP = (
    "bring each series to the encoder's window by linear interpolation, or keep the "
    "last window points and left-pad shorter series (none)"
)


def _resize_option(command):
    from s2gen.pretrain.config import RESIZE_MODES

    return click.option(
        "--resize",
        type=click.Choice(RESIZE_MODES),
        default="linear",
        show_default=True,
        help=RESIZE_HELP,
    )(command)


def _embed_fn(encoder, batch_size: int, resize: str = "linear"):
    """The encoder frozen, as the probes call it (``s2gen.evaluate.frozen.FrozenEncoder``)."""
    from s2gen.evaluate.frozen import FrozenEncoder

    return FrozenEncoder(encoder, batch_size, resize)


def _checkpoint_names(checkpoints: tuple[str, ...]) -> list[str]:
    """Table column names: run directory / file stem ("run/best"), or NAME/VERSION of a
    registry URI, made unique when needed."""
    from s2gen.tracking import checkpoint_label, is_registry_uri

    stems = [
        checkpoint_label(c) if is_registry_uri(c) else str(Path(Path(c).parent.name, Path(c).stem))
        for c in checkpoints
    ]
    return [s if stems.count(s) == 1 else f"{s}#{k + 1}" for k, s in enumerate(stems)]


REGISTRY_CACHE = "registry"  # under --out: checkpoints downloaded from a model registry


def _architecture(checkpoint_path: str, flags: dict) -> dict:
    """The series-encoder settings saved in a pretraining checkpoint (``flags`` must agree)."""
    from s2gen.pretrain import checkpoint
    from s2gen.pretrain.config import ENCODER_FIELDS
    from s2gen.pretrain.options import check_architecture

    saved = checkpoint.config_of(checkpoint.load(checkpoint_path))
    check_architecture(saved, flags, checkpoint_path)
    return {name: getattr(saved, name) for name in ENCODER_FIELDS}


def _model_specs(
    checkpoints,
    random_init,
    preset,
    device,
    batch_size,
    resize="linear",
    architecture=None,
    names=None,
):
    """ModelSpecs of the checkpoints (local files) and of the random initialisation.

    The random encoder has ``preset``'s architecture with the ``architecture``
    flags (``--backbone``, front end, gpt2 settings), or, when ``preset`` is
    None, that of the first checkpoint (the "small" preset without one).
    Checkpoints that contradict the flags are refused; ``--backbone-weights``
    rebuilds the frozen base of gpt2 checkpoints. ``names`` are the
    checkpoints' column names (default: from their paths).
    """
    from s2gen.evaluate.suite import ModelSpec
    from s2gen.pretrain import load_encoder, random_encoder

    architecture = architecture or {}
    saved = [_architecture(path, architecture) for path in checkpoints]
    backbone_weights = architecture.get("backbone_weights")

    def from_checkpoint(path):
        cache = {}

        def make(seed):
            if "embed" not in cache:
                encoder = load_encoder(path, device=device, backbone_weights=backbone_weights)
                cache["embed"] = _embed_fn(encoder, batch_size, resize)
            return cache["embed"]

        return make

    overrides = dict(architecture)
    if preset is None:
        preset = "small"
        if saved:
            overrides = {**saved[0], **architecture}
    if random_init:
        note_random_base(overrides)

    def from_random(seed):
        encoder = random_encoder(preset=preset, seed=seed, **overrides)
        return _embed_fn(encoder.to(device), batch_size, resize)

    specs = [
        ModelSpec(name, from_checkpoint(path), seeded=False)
        for name, path in zip(names or _checkpoint_names(checkpoints), checkpoints, strict=True)
    ]
    if random_init:
        specs.append(ModelSpec("random-init", from_random, seeded=True))
    return specs


def _check_preset(given: bool, random_init: bool) -> None:
    """``--preset`` shapes the random encoder only: refuse it where none is built."""
    if given and not random_init:
        raise click.BadParameter(
            "--preset applies to --random-init only (a checkpoint brings its own "
            "architecture); drop --preset or add --random-init",
            param_hint="--preset",
        )


def _check_memory(
    checkpoints, random_init, preset, batch_size: int, train: bool, architecture=None
) -> None:
    """Refuse a --batch-size whose encoder pass would not fit in memory (``s2gen.memory``).

    Reads each checkpoint's architecture, so a file that is no checkpoint is
    reported here, before any dataset is loaded.
    """
    from s2gen.memory import check_batch, encoder_bytes
    from s2gen.pretrain import checkpoint
    from s2gen.pretrain.config import PretrainConfig

    try:
        configs = [checkpoint.config_of(checkpoint.load(path)) for path in checkpoints]
        if random_init and (preset is not None or not configs):
            configs.append(PretrainConfig.preset(preset or "small", **(architecture or {})))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    for cfg in configs:
        check_batch(lambda b, cfg=cfg: encoder_bytes(cfg, b, train), batch_size)


def _score_option(command):
    from s2gen.evaluate.anomaly import ANOMALY_SCORES

    return click.option(
        "--score",
        type=click.Choice(tuple(ANOMALY_SCORES)),
        default=None,
        help="anomaly: how an encoder scores a point (masking: TS2Vec's change of the "
        "representation of the point's token when the point is masked) [default: masking]",
    )(command)


def _list_datasets(ctx, param, value):
    """Eager ``--list-datasets``: print the known names and exit."""
    if not value or ctx.resilient_parsing:
        return
    from s2gen.evaluate.datasets import INSTALL_HINT, known_names

    for task, names in known_names().items():
        click.echo(f"{task}: {', '.join(names)}")
    click.echo(f"(names marked 'not installed' need: {INSTALL_HINT})")
    ctx.exit()


def _local_checkpoint(value: str, mlflow_uri: str | None, cache: Path) -> Path:
    """A ``--checkpoint`` value (a file or models:/NAME/VERSION) as a local file."""
    from s2gen.tracking import resolve_checkpoint

    try:
        return resolve_checkpoint(value, mlflow_uri, cache)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--checkpoint") from None
    except ImportError as error:
        raise click.ClickException(str(error)) from None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


@click.command()
@click.option(
    "--list-datasets",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_list_datasets,
    help="list the dataset names known here and exit",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    help="pretrained encoder checkpoint, a .pt file or models:/NAME/VERSION; repeatable",
)
@click.option(
    "--random-init",
    is_flag=True,
    help="also evaluate the same architecture without pretraining (one per seed)",
)
@click.option(
    "--preset",
    default=None,
    help="architecture preset of --random-init (default: the first checkpoint's "
    "architecture; 'small' without a checkpoint)",
)
@click.option(
    "--task", type=click.Choice(["classification", "forecasting", "anomaly"]), required=True
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    help=f"{DATASET_HELP}; with --ucr-root a set name there, or 'all' for every set found",
)
@click.option(
    "--ucr-root",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="local copy of the UCR/UEA archives: NAME/NAME_TRAIN.tsv or .ts sets, in DIR or "
    "up to two folder levels below it (e.g. DIR/UCRArchive_2018, DIR/Multivariate_ts)",
)
@click.option("--horizon", type=click.IntRange(min=1), help="forecast horizon H (forecasting)")
@click.option(
    "--column",
    default=None,
    help="column of a .csv/.npy series given by path (default: the last; anomaly: the last "
    "but the label column)",
)
@click.option(
    "--label-column",
    default=None,
    help="anomaly: column of the 0/1 point labels (1 = anomalous) of a .csv series "
    "[default: label]; shipped series (yahoo, mitdb) are read by name",
)
@click.option(
    "--protocol",
    type=click.Choice(["window", "ts2vec"]),
    default=None,
    help="forecasting: window (ridge from the pooled embedding of the context window) or "
    "ts2vec (ridge from the last timestamp's representation, TS2Vec's alpha selection) "
    "[default: window]",
)
@_score_option
@click.option(
    "--period",
    type=click.IntRange(min=2),
    default=None,
    help="seasonal period for seasonal naive (default: known for named series)",
)
@click.option(
    "--context",
    type=click.IntRange(min=2),
    default=48,
    show_default=True,
    help="context window length (forecasting; anomaly: the window ending at a scored point)",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="tail share of the series tested [forecasting: 0.2; anomaly: 0.5, TS2Vec's split]",
)
@click.option(
    "--classifier",
    type=click.Choice(["logreg", "svm", "rf"]),
    default="logreg",
    show_default=True,
    help="probe on frozen embeddings (classification): logistic regression or RBF SVM "
    "with C cross-validated, or a 200-tree random forest",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="seeds 0..N-1 for everything random (random init)",
)
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="add 1-NN Euclidean, the probe's classifier on raw values, catch22 + random "
    "forest and MiniRocket (classification) or naive, seasonal naive and ridge on raw "
    "windows (forecasting)",
)
@click.option(
    "--dtw",
    is_flag=True,
    help="also run 1-NN DTW (window 10% of the length; classification). Slow: hours "
    "over the whole UCR archive on 2 cores",
)
@_resize_option
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="directory for results.json, results.md, results.png",
)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="series per embedding batch",
)
@click.option(
    "--mlflow",
    "mlflow_uri",
    default=None,
    help="MLflow tracking URI that models:/ checkpoints are read from "
    "[default: $MLFLOW_TRACKING_URI]",
)
@click.option("--verbose", "-v", is_flag=True, help="log progress")
@architecture_options
def evaluate(
    checkpoints,
    random_init,
    preset,
    task,
    datasets,
    ucr_root,
    horizon,
    column,
    label_column,
    protocol,
    score,
    period,
    context,
    test_fraction,
    classifier,
    seeds,
    baselines,
    dtw,
    resize,
    out,
    device,
    batch_size,
    mlflow_uri,
    verbose,
    architecture,
):
    """Compare pretrained and random-init encoders and classical baselines on real data.

    Classification: frozen per-channel [CLS] embeddings (concatenated for
    multivariate data) -> logistic regression or SVM with C cross-validated
    on the train split, or a random forest -> accuracy on the test split.
    Forecasting: ridge from the embedding of the context window to the next H
    values -> MSE and MAE on the test tail of the z-normalised series
    (--protocol ts2vec: from the last timestamp's representation). Anomaly: a
    score per point (--score masking: how much the state of its token changes
    when the point is masked, TS2Vec), flagged above mean + 4 std of the first part's
    scores -> F1 with point adjustment on the tested tail of a labelled series
    (shipped yahoo/mitdb, or a .csv with a 0/1 label column).
    Below the tables: each model's mean score, average rank and wins/ties/losses
    against every other model.
    """
    _setup_logging(verbose)
    if not checkpoints and not random_init:
        raise click.BadParameter(
            "give at least one --checkpoint or --random-init", param_hint="--checkpoint"
        )
    if task == "forecasting" and horizon is None:
        raise click.BadParameter("--task forecasting needs --horizon H", param_hint="--horizon")
    for name, value, tasks in (
        ("--horizon", horizon, ("forecasting",)),
        ("--column", column, ("forecasting", "anomaly")),
        ("--period", period, ("forecasting",)),
        ("--protocol", protocol, ("forecasting",)),
        ("--test-fraction", test_fraction, ("forecasting", "anomaly")),
        ("--label-column", label_column, ("anomaly",)),
        ("--score", score, ("anomaly",)),
    ):
        if task not in tasks and value is not None:
            raise click.BadParameter(
                f"{name} applies to --task {' or '.join(tasks)} only", param_hint=name
            )
    every = [name.lower() for name in datasets] == ["all"]
    if "all" in [name.lower() for name in datasets] and not every:
        raise click.BadParameter(
            "--dataset all runs every set: give it alone", param_hint="--dataset"
        )
    if every and ucr_root is None:
        raise click.BadParameter(
            "--dataset all needs --ucr-root DIR, a local copy of the UCR/UEA archives",
            param_hint="--dataset",
        )
    _check_preset(preset is not None, random_init)
    for name, value in (("--ucr-root", ucr_root), ("--dtw", dtw or None)):
        if task != "classification" and value is not None:
            raise click.BadParameter(
                f"{name} applies to --task classification only", param_hint=name
            )
    from s2gen.evaluate.anomaly import AnomalyConfig
    from s2gen.evaluate.archive import find_sets, resolve
    from s2gen.evaluate.protocols import ClassificationConfig, ForecastConfig
    from s2gen.evaluate.report import file_sha256, write_results
    from s2gen.evaluate.suite import SuiteConfig, run_suite

    files = [_local_checkpoint(c, mlflow_uri, Path(out) / REGISTRY_CACHE) for c in checkpoints]
    _check_memory(files, random_init, preset, batch_size, train=False, architecture=architecture)
    protocol = protocol or "window"
    fraction = test_fraction or (0.5 if task == "anomaly" else 0.2)
    skipped = [] if every else None
    try:
        names, archive = tuple(datasets), None
        if ucr_root is not None:
            archive = find_sets(ucr_root)
            names = tuple(resolve(archive, names))
            click.echo(f"{len(archive.sets)} sets under {ucr_root}; evaluating {len(names)}")
        cfg = SuiteConfig(
            task=task,
            datasets=names,
            seeds=tuple(range(seeds)),
            classification=ClassificationConfig(classifier=classifier),
            forecast=(
                ForecastConfig(horizon, context, fraction, protocol=protocol) if horizon else None
            ),
            baselines=baselines,
            dtw=dtw,
            column=column,
            period=period,
            anomaly=(
                AnomalyConfig(context, fraction, score or "masking") if task == "anomaly" else None
            ),
            label_column=(label_column or "label") if task == "anomaly" else None,
        )
        columns = _checkpoint_names(checkpoints)
        models = _model_specs(
            files, random_init, preset, device, batch_size, resize, architecture, columns
        )
        records = run_suite(models, cfg, skipped)
    except (ValueError, ImportError) as error:
        raise click.ClickException(str(error)) from None
    if not records:
        first = skipped[0]
        raise click.ClickException(
            f"no dataset could be evaluated ({len(skipped)} failed; the first, "
            f"{first['dataset']}: {first['error']})"
        )
    config = {
        "task": task,
        "datasets": list(datasets),
        "checkpoints": list(checkpoints),
        "checkpoint_sha256": [file_sha256(f) for f in files],
        "checkpoint_files": [str(f) for f in files],
        "random_init": random_init,
        "preset": preset,
        "architecture": architecture,
        "seeds": list(cfg.seeds),
        "classifier": classifier,
        "horizon": horizon,
        "column": column,
        "period": period,
        "context": context,
        "test_fraction": fraction,
        "protocol": protocol if task == "forecasting" else None,
        "label_column": label_column,
        "score": (score or "masking") if task == "anomaly" else None,
        "mlflow": mlflow_uri,
        "baselines": baselines,
        "dtw": dtw,
        "resize": resize,
        "ucr_root": ucr_root,
        "ucr_not_used": (
            {name: [str(p) for p in paths] for name, paths in archive.not_used.items()}
            if archive is not None
            else {}
        ),
    }
    table = write_results(records, out, config, skipped)
    click.echo(table)
    click.echo(
        f"wrote {len(records)} records to {Path(out) / 'results.json'}, results.md, results.png"
    )


FINETUNE_TASKS = ("classification", "forecasting", "anomaly")


@click.command()
@click.option(
    "--checkpoint",
    help="pretrained encoder checkpoint to fine-tune: a .pt file or models:/NAME/VERSION",
)
@click.option("--random-init", is_flag=True, help="fine-tune a randomly initialised encoder")
@click.option(
    "--preset", default="small", show_default=True, help="architecture preset of --random-init"
)
@click.option(
    "--task",
    type=click.Choice(FINETUNE_TASKS),
    default="classification",
    show_default=True,
    help="classification: pooled embedding -> linear; forecasting: flattened token states "
    "-> linear to H per channel; anomaly: reconstruct each window, score = squared error",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    help=f"{DATASET_HELP} (anomaly: yahoo, mitdb, or a value,label .csv)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="directory for the checkpoints, config.json and results.json/.md/.png",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML/YAML/JSON file of the settings below (epochs, batch_size, lr, head_lr, "
    "weight_decay, val_fraction, patience, seeds, resize); flags override it. A run's "
    "config.json is such a file.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True, help="encoder learning rate")
@click.option("--head-lr", type=float, default=1e-3, show_default=True)
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option(
    "--val-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="share of each class of the train split held out for validation (forecasting, "
    "anomaly: the last share of the train windows)",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="epochs without a better validation score before stopping",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="fine-tune with seeds 0..N-1",
)
@click.option("--horizon", type=click.IntRange(min=1), help="forecast horizon H (forecasting)")
@click.option(
    "--context",
    type=click.IntRange(min=2),
    default=48,
    show_default=True,
    help="context window length (forecasting)",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="tail share of the series tested (forecasting, anomaly)",
)
@click.option(
    "--mlflow",
    "mlflow_uri",
    default=None,
    help="MLflow tracking URI (sqlite:///mlflow.db locally; needs s2gen[track]): log "
    "parameters, metrics and the checkpoint; also where models:/ checkpoints are read "
    "[default for those: $MLFLOW_TRACKING_URI]",
)
@_resize_option
@click.option("--device", default="cpu", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="log every epoch")
@architecture_options
@click.pass_context
def finetune(
    ctx,
    checkpoint,
    random_init,
    preset,
    task,
    datasets,
    out,
    config_file,
    epochs,
    batch_size,
    lr,
    head_lr,
    weight_decay,
    val_fraction,
    patience,
    seeds,
    horizon,
    context,
    test_fraction,
    mlflow_uri,
    resize,
    device,
    verbose,
    architecture,
):
    """Fine-tune an encoder with a task head per dataset; score the test part once.

    Classification: a linear head on the pooled embedding, a stratified
    validation split, early stopping on validation accuracy, test accuracy.
    Forecasting and anomaly: the head of ``s2gen.evaluate.heads``, the last
    train windows validate, early stopping on validation MSE; test MSE/MAE
    (z-normalised series) or ROC AUC and average precision of the
    reconstruction scores. The best weights are saved as
    OUT/DATASET/seedS/finetuned.pt (for a gpt2 backbone without its frozen base).
    """
    _setup_logging(verbose)
    if bool(checkpoint) == bool(random_init):
        raise click.BadParameter(
            "give exactly one of --checkpoint or --random-init", param_hint="--checkpoint"
        )
    if (task == "forecasting") != (horizon is not None):
        raise click.BadParameter(
            "--task forecasting needs --horizon H, and --horizon applies to it only",
            param_hint="--horizon",
        )
    _check_preset(ctx.get_parameter_source("preset") == ParameterSource.COMMANDLINE, random_init)
    if random_init:
        note_random_base(architecture)  # finetune's random encoder is the preset's with the flags
    from s2gen import tracking
    from s2gen.evaluate.finetune_settings import config_for, finetune_settings, save_settings
    from s2gen.evaluate.report import file_sha256, write_results
    from s2gen.pretrain import load_encoder, random_encoder

    flags = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        head_lr=head_lr,
        weight_decay=weight_decay,
        val_fraction=val_fraction,
        patience=patience,
        seeds=seeds,
        resize=resize,
    )
    given = {
        name: value
        for name, value in flags.items()
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    try:
        settings = finetune_settings(config_file, given)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--config") from None
    if not mlflow_uri:
        click.echo(tracking.enable_hint("finetune"), err=True)
    checkpoint_file = None
    if checkpoint:
        checkpoint_file = _local_checkpoint(checkpoint, mlflow_uri, Path(out) / REGISTRY_CACHE)
    checkpoints = (checkpoint_file,) if checkpoint else ()
    _check_memory(
        checkpoints,
        random_init,
        preset,
        settings["batch_size"],
        train=True,
        architecture=architecture,
    )
    if checkpoint:
        _architecture(checkpoint_file, architecture)  # after the check has read it
    model = tracking.checkpoint_label(checkpoint) if checkpoint else f"random-init ({preset})"
    records = []
    try:
        for name in datasets:
            data = _finetune_data(task, name)
            for seed in range(settings["seeds"]):
                if checkpoint:
                    encoder = load_encoder(
                        checkpoint_file,
                        device=device,
                        backbone_weights=architecture.get("backbone_weights"),
                    )
                else:
                    encoder = random_encoder(preset=preset, seed=seed, **architecture)
                where = Path(out) / data.name / f"seed{seed}"
                metrics, info = _finetune_one(
                    task,
                    encoder,
                    data,
                    config_for(settings, seed),
                    where,
                    (horizon, context, test_fraction),
                    mlflow_uri,
                    device,
                )
                records.append(
                    {
                        "task": "finetune" if task == "classification" else f"finetune-{task}",
                        "dataset": data.name,
                        "model": f"finetune: {model}",
                        "seed": seed,
                        "metrics": metrics,
                        "info": info,
                    }
                )
                shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                click.echo(
                    f"{data.name} seed {seed}: test {shown} (best epoch {info['best_epoch']})"
                )
    except (ValueError, ImportError) as error:
        raise click.ClickException(str(error)) from None
    save_settings(settings, out)
    config = {
        "task": task,
        "checkpoint": checkpoint,
        "checkpoint_sha256": file_sha256(checkpoint_file) if checkpoint else None,
        "checkpoint_file": str(checkpoint_file) if checkpoint else None,
        "random_init": random_init,
        "preset": preset,
        "architecture": architecture,
        "datasets": list(datasets),
        **settings,
        "horizon": horizon,
        "context": context,
        "test_fraction": test_fraction,
        "config_file": config_file,
        "mlflow": mlflow_uri,
    }
    click.echo(write_results(records, out, config))


def _finetune_data(task: str, name: str):
    """The dataset of a fine-tuning task, by name or path."""
    if task == "classification":
        from s2gen.evaluate.datasets import load_classification

        return load_classification(name)
    if task == "forecasting":
        from s2gen.evaluate.datasets import load_forecasting

        return load_forecasting(name)
    from s2gen.evaluate.anomaly import load_anomaly

    return load_anomaly(name)


def _finetune_one(task, encoder, data, cfg, out_dir, windows, mlflow_uri, device):
    """(test metrics, info) of one fine-tuning run."""
    if task == "classification":
        from s2gen.evaluate.finetune import finetune as run_finetune

        result = run_finetune(encoder, data, cfg, out_dir, mlflow_uri=mlflow_uri, device=device)
        info = {"val_accuracy": result.val_accuracy}
        metrics = {"accuracy": result.test_accuracy}
    else:
        from s2gen.evaluate import finetune_series

        horizon, context, test_fraction = windows
        if task == "forecasting":
            from s2gen.evaluate.protocols import ForecastConfig

            forecast = ForecastConfig(horizon, context, test_fraction)
            result = finetune_series.finetune_forecasting(
                encoder, data.values, forecast, cfg, out_dir, data.name, mlflow_uri, device
            )
            info = {"horizon": horizon, "context": context}
        else:
            result = finetune_series.finetune_anomaly(
                encoder,
                data.values,
                data.labels,
                test_fraction,
                cfg,
                out_dir,
                data.name,
                mlflow_uri,
                device,
            )
            info = {"window": encoder.window}
        info["val_loss"] = result.val_loss
        metrics = result.metrics
    info.update(
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        checkpoint=str(result.checkpoint),
    )
    return metrics, info
