"""Click commands ``pretrain`` and ``embed`` (registered on the ``s2gen`` group).

A thin layer: build a ``PretrainConfig``, call one library function, print a
short summary. Torch is imported inside the commands, so importing this module
(and starting ``s2gen generate``) stays fast.
"""

import os
from pathlib import Path

import click

from s2gen.pretrain.config import (
    BACKBONE_NAMES,
    OBJECTIVE_NAMES,
    PRESET_NAMES,
    RANDOM_BASE_NOTE,
    PretrainConfig,
    read_settings,
)
from s2gen.pretrain.llm_options import backbone_weights_option, llm_options, llm_overrides


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


@click.command()
@click.option("--data", "store_path", required=True, help="An s2gen store to pretrain on.")
@click.option("--out", "out_dir", required=True, help="Run directory (metrics, checkpoints).")
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
    help=f"Objective(s), '+'-joined: {', '.join(OBJECTIVE_NAMES)} [preset: s2+timedrl].",
)
@click.option(
    "--backbone",
    type=click.Choice(BACKBONE_NAMES),
    help="Series encoder [preset: s2, the patch transformer].",
)
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
    default=None,
    help="OATS reference series: a store, .npy or .csv [default: the store's reference split].",
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
@click.option("--quiet", is_flag=True, help="No progress bar.")
@llm_options
def pretrain(
    store_path,
    out_dir,
    preset,
    config_file,
    objective,
    backbone,
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
    quiet,
    **llm,
) -> None:
    """Pretrain a series encoder on a store (S2: against its expressions, SymTime-style).

    Writes config.json, run.json, metrics.jsonl, last.pt and best.pt to --out;
    runs under torchrun (DDP) as is, e.g. `torchrun --nproc_per_node 2 -m s2gen pretrain ...`.
    """
    overrides = {
        "objective": objective,
        "backbone": backbone,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "window": window,
        "num_workers": workers,
        "seed": seed,
        "use_inputs": use_inputs,
        **llm_overrides(llm),
    }
    cfg = build_config(preset, config_file, overrides)
    if cfg.backbone == "gpt2" and not cfg.backbone_weights:
        click.echo(RANDOM_BASE_NOTE, err=True)
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
    if oats_ref and not oats_generator:
        raise click.BadParameter("--oats-ref needs --oats GEN.pt", param_hint="--oats-ref")
    try:
        hook = None
        if oats_generator:
            from s2gen.oats.wiring import oats_hook_from_options

            hook = oats_hook_from_options(
                cfg,
                store_path,
                oats_generator,
                ref=oats_ref,
                explore_prob=explore_prob,
                after=oats_after,
            )
        final = run(
            cfg,
            store_path,
            out_dir,
            resume=resume,
            device=device,
            batch_hook=hook,
            progress=not quiet,
        )
    except (ValueError, ImportError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun, rank 0 reports
        return
    shown = ("loss", "val_loss", "val_t2s_top1", "val_t2s_top10", "val_mlm_acc", "val_inst")
    summary = ", ".join(f"{k} {final[k]:.4g}" for k in shown if k in final)
    click.echo(f"pretrained {cfg.steps} steps into {out_dir}: {summary}")


def _read_series(path: Path):
    import numpy as np

    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif path.suffix == ".csv":
        data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32)
    else:
        raise click.BadParameter(f"{path}: give a .npy or .csv file", param_hint="--input")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[1] < 1:
        raise click.BadParameter(
            f"{path} holds shape {data.shape}; give (n, L): one series per row",
            param_hint="--input",
        )
    return data.astype(np.float32)


@click.command()
@click.option(
    "--checkpoint",
    "checkpoint_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="last.pt or best.pt of a pretraining run.",
)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Series as .npy (n, L) or .csv (one series per row, comma-separated).",
)
@click.option("--out", "out_path", required=True, help="Embeddings (n, dim) as .npy or .csv.")
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
@backbone_weights_option
def embed(
    checkpoint_path, input_path, out_path, batch_size, resize, device, backbone_weights
) -> None:
    """Embed series with a pretrained series encoder (resized to its window by default)."""
    import numpy as np

    out = Path(out_path)
    if out.suffix not in (".npy", ".csv"):
        raise click.BadParameter(f"{out}: give a .npy or .csv path", param_hint="--out")
    series = _read_series(Path(input_path))
    from s2gen.pretrain.encoder import load_encoder
    from s2gen.pretrain.train import resolve_device

    try:
        encoder = load_encoder(checkpoint_path, resolve_device(device), backbone_weights)
    except (ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        emb = encoder.embed(series, batch_size=batch_size, resize=resize)
    except ValueError as exc:
        raise click.ClickException(f"--input {input_path}: {exc}") from exc
    if out.suffix == ".npy":
        np.save(out, emb)
    else:
        np.savetxt(out, emb, delimiter=",", fmt="%.7g")
    click.echo(f"embedded {len(series)} series of length {series.shape[1]} -> {out} {emb.shape}")
