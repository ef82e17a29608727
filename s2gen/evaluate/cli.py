"""``s2gen evaluate`` and ``s2gen finetune``: thin click commands.

Torch, scikit-learn and ``s2gen.pretrain`` are imported inside the commands,
so importing this module (as ``s2gen.cli`` does) stays light.
"""

import logging
from pathlib import Path

import click

from s2gen.pretrain.llm_options import llm_options

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
    """A frozen ``embed`` callable over ``encoder`` in eval mode, without autograd."""
    import torch

    encoder.eval()

    def embed(series):
        with torch.no_grad():
            return encoder.embed(series, batch_size=batch_size, resize=resize)

    return embed


def _backbone_option(command):
    from s2gen.pretrain.config import BACKBONE_NAMES

    return click.option(
        "--backbone",
        type=click.Choice(BACKBONE_NAMES),
        default=None,
        help="series encoder of --random-init (s2: the patch transformer; gpt2: a frozen "
        "GPT-2 with LoRA adapters) [default: the preset's or the first checkpoint's]",
    )(command)


def _random_overrides(random_init: bool, backbone: str | None, llm: dict) -> dict:
    """PretrainConfig settings of --random-init from --backbone and the llm options.

    They define an architecture, so they need --random-init; --backbone-weights
    also rebuilds checkpoints. One line says when a gpt2 base is random.
    """
    from s2gen.pretrain.config import RANDOM_BASE_NOTE
    from s2gen.pretrain.llm_options import llm_overrides

    overrides = llm_overrides(llm)
    if backbone is not None:
        overrides["backbone"] = backbone
    shaping = sorted(set(overrides) - {"backbone_weights"})
    if shaping and not random_init:
        flag = "--" + shaping[0].replace("_", "-")
        raise click.BadParameter(
            "it shapes the --random-init encoder (a checkpoint keeps its own)", param_hint=flag
        )
    if overrides.get("backbone") == "gpt2" and not overrides.get("backbone_weights"):
        click.echo(RANDOM_BASE_NOTE, err=True)
    return overrides


def _checkpoint_names(checkpoints: tuple[str, ...]) -> list[str]:
    """Table column names: run directory / file stem ("run/best"), made unique when needed."""
    stems = [str(Path(Path(c).parent.name, Path(c).stem)) for c in checkpoints]
    return [s if stems.count(s) == 1 else f"{s}#{k + 1}" for k, s in enumerate(stems)]


ARCHITECTURE = ("window", "patch", "d_model", "n_heads", "d_ff", "n_layers")
# the backbone and front end (a gpt2 checkpoint's random-init keeps its base weights)
BACKBONE_ARCHITECTURE = ("backbone", "frontend", "conv_kernels", "conv_channels", "conv_stride")


def _architecture(checkpoint_path: str) -> dict:
    """The series-encoder settings saved in a pretraining checkpoint."""
    from s2gen.pretrain import checkpoint
    from s2gen.pretrain.llm_options import LLM_OPTIONS

    saved = checkpoint.config_of(checkpoint.load(checkpoint_path)).to_dict()
    names = ARCHITECTURE + BACKBONE_ARCHITECTURE + LLM_OPTIONS
    return {name: saved[name] for name in names if name in saved}


def _model_specs(
    checkpoints,
    random_init,
    preset,
    device,
    batch_size,
    resize="linear",
    backbone_weights=None,
    random_overrides=None,
):
    """ModelSpecs of the checkpoints and of the random initialisation.

    The random encoder has ``preset``'s architecture, or, when ``preset`` is
    None, that of the first checkpoint (the "small" preset without one), with
    ``random_overrides`` (backbone, front end, gpt2 settings) on top.
    ``backbone_weights`` rebuilds the frozen base of gpt2 checkpoints.
    """
    from s2gen.evaluate.suite import ModelSpec
    from s2gen.pretrain import load_encoder, random_encoder

    def from_checkpoint(path):
        cache = {}

        def make(seed):
            if "embed" not in cache:
                encoder = load_encoder(path, device=device, backbone_weights=backbone_weights)
                cache["embed"] = _embed_fn(encoder, batch_size, resize)
            return cache["embed"]

        return make

    overrides = {}
    if preset is None:
        preset = "small"
        overrides = _architecture(checkpoints[0]) if checkpoints else {}
    overrides.update(random_overrides or {})

    def from_random(seed):
        encoder = random_encoder(preset=preset, seed=seed, **overrides)
        return _embed_fn(encoder.to(device), batch_size, resize)

    specs = [
        ModelSpec(name, from_checkpoint(path), seeded=False)
        for name, path in zip(_checkpoint_names(checkpoints), checkpoints, strict=True)
    ]
    if random_init:
        specs.append(ModelSpec("random-init", from_random, seeded=True))
    return specs


def _list_datasets(ctx, param, value):
    """Eager ``--list-datasets``: print the known names and exit."""
    if not value or ctx.resilient_parsing:
        return
    from s2gen.evaluate.datasets import INSTALL_HINT, known_names

    for task, names in known_names().items():
        click.echo(f"{task}: {', '.join(names)}")
    click.echo(f"(names marked 'not installed' need: {INSTALL_HINT})")
    ctx.exit()


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
    type=click.Path(exists=True),
    help="pretrained encoder checkpoint; repeatable",
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
@click.option("--task", type=click.Choice(["classification", "forecasting"]), required=True)
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
    "--column", default=None, help="column of a .csv/.npy series given by path (default: the last)"
)
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
    help="context window length (forecasting)",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="tail share of the series tested (forecasting)",
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
@click.option("--verbose", "-v", is_flag=True, help="log progress")
@_backbone_option
@llm_options
def evaluate(
    checkpoints,
    random_init,
    preset,
    task,
    datasets,
    ucr_root,
    horizon,
    column,
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
    verbose,
    backbone,
    **llm,
):
    """Compare pretrained and random-init encoders and classical baselines on real data.

    Classification: frozen per-channel [CLS] embeddings (concatenated for
    multivariate data) -> logistic regression or SVM with C cross-validated
    on the train split, or a random forest -> accuracy on the test split.
    Forecasting: ridge from the embedding of the context window to the next H
    values -> MSE and MAE on the test tail of the z-normalised series. Below
    the tables: each model's mean score, average rank and wins/ties/losses
    against every other model.
    """
    _setup_logging(verbose)
    if not checkpoints and not random_init:
        raise click.BadParameter(
            "give at least one --checkpoint or --random-init", param_hint="--checkpoint"
        )
    random_overrides = _random_overrides(random_init, backbone, llm)
    if task == "forecasting" and horizon is None:
        raise click.BadParameter("--task forecasting needs --horizon H", param_hint="--horizon")
    for name, value in (("--horizon", horizon), ("--column", column), ("--period", period)):
        if task == "classification" and value is not None:
            raise click.BadParameter(f"{name} applies to --task forecasting only", param_hint=name)
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
    for name, value in (("--ucr-root", ucr_root), ("--dtw", dtw or None)):
        if task == "forecasting" and value is not None:
            raise click.BadParameter(
                f"{name} applies to --task classification only", param_hint=name
            )
    from s2gen.evaluate.archive import find_sets, resolve
    from s2gen.evaluate.protocols import ClassificationConfig, ForecastConfig
    from s2gen.evaluate.report import file_sha256, write_results
    from s2gen.evaluate.suite import SuiteConfig, run_suite

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
            forecast=ForecastConfig(horizon, context, test_fraction) if horizon else None,
            baselines=baselines,
            dtw=dtw,
            column=column,
            period=period,
        )
        models = _model_specs(
            checkpoints,
            random_init,
            preset,
            device,
            batch_size,
            resize,
            llm.get("backbone_weights"),
            random_overrides,
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
        "checkpoint_sha256": [file_sha256(c) for c in checkpoints],
        "random_init": random_init,
        "preset": preset,
        "seeds": list(cfg.seeds),
        "classifier": classifier,
        "horizon": horizon,
        "column": column,
        "period": period,
        "context": context,
        "test_fraction": test_fraction,
        "baselines": baselines,
        "dtw": dtw,
        "resize": resize,
        "random_overrides": random_overrides,
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
    "--checkpoint", type=click.Path(exists=True), help="pretrained encoder checkpoint to fine-tune"
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
    help="directory for the checkpoints and results.json/.md/.png",
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
    help="MLflow tracking URI: log parameters, metrics and the checkpoint",
)
@_resize_option
@click.option("--device", default="cpu", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="log every epoch")
@_backbone_option
@llm_options
def finetune(
    checkpoint,
    random_init,
    preset,
    task,
    datasets,
    out,
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
    backbone,
    **llm,
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
    random_overrides = _random_overrides(random_init, backbone, llm)
    from s2gen.evaluate.finetune import FinetuneConfig
    from s2gen.evaluate.report import file_sha256, write_results
    from s2gen.pretrain import load_encoder, random_encoder

    model = Path(checkpoint).stem if checkpoint else f"random-init ({preset})"
    records = []
    try:
        for name in datasets:
            data = _finetune_data(task, name)
            for seed in range(seeds):
                cfg = FinetuneConfig(
                    epochs,
                    batch_size,
                    lr,
                    head_lr,
                    weight_decay,
                    val_fraction,
                    patience,
                    seed,
                    resize=resize,
                )
                if checkpoint:
                    encoder = load_encoder(
                        checkpoint, device=device, backbone_weights=llm.get("backbone_weights")
                    )
                else:
                    encoder = random_encoder(preset=preset, seed=seed, **random_overrides)
                where = Path(out) / data.name / f"seed{seed}"
                metrics, info = _finetune_one(
                    task,
                    encoder,
                    data,
                    cfg,
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
    config = {
        "task": task,
        "checkpoint": checkpoint,
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        "random_init": random_init,
        "preset": preset,
        "random_overrides": random_overrides,
        "datasets": list(datasets),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "head_lr": head_lr,
        "weight_decay": weight_decay,
        "val_fraction": val_fraction,
        "patience": patience,
        "seeds": seeds,
        "horizon": horizon,
        "context": context,
        "test_fraction": test_fraction,
        "mlflow": mlflow_uri,
        "resize": resize,
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
    from s2gen.evaluate.anomaly_data import load_anomaly

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
