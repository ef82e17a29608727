"""``s2gen oats``: train the guided diffusion generator and sample from it.

A thin click layer: each command builds a config, calls one library function
and prints a summary. Torch is imported inside the commands.
"""

import time
from pathlib import Path

import click


@click.group()
def oats() -> None:
    """OATS: guided diffusion generator and influence-scored augmentation."""


@oats.command("train-generator")
@click.option("--data", "data", required=True, help="Training store (s2gen generate output).")
@click.option("--out", "out", required=True, help="Checkpoint file to write, e.g. gen.pt.")
@click.option(
    "--subset", type=float, default=0.05, show_default=True, help="Fraction of rows to train on."
)
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--field",
    type=click.Choice(["x", "y", "both"]),
    default="y",
    show_default=True,
    help="Which channels of a row are training series.",
)
@click.option(
    "--window",
    type=click.IntRange(min=8),
    default=None,
    help="Train on random windows of this length (the pretraining --window) [default: L].",
)
@click.option(
    "--val-permille",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="Rows pretraining validates on (seed % 1000 below it): never trained on here either; "
    "give the pretraining run's value.",
)
@click.option(
    "--reference-permille",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="The next per mille of rows (pretraining's reference split), held out likewise.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def train_generator_command(
    data: str,
    out: str,
    subset: float,
    steps: int,
    batch_size: int,
    field: str,
    window: int | None,
    val_permille: int,
    reference_permille: int,
    seed: int,
) -> None:
    """Train the generator on a random subset of a store's training rows.

    The rows pretraining holds out (validation and reference splits) are never drawn.
    """
    from s2gen.oats.config import GeneratorConfig
    from s2gen.oats.data import crop_windows, store_subset
    from s2gen.oats.generator import train_generator
    from s2gen.store import StoreError
    from s2gen.store import open as open_store

    try:
        cfg = GeneratorConfig(subset=subset, steps=steps, batch_size=batch_size, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        series, rows = store_subset(
            open_store(data), subset, seed, field, val_permille, reference_permille
        )
    except StoreError as exc:  # no store there, or a damaged shard
        raise click.ClickException(str(exc)) from exc
    started = time.perf_counter()
    try:
        if window is not None:
            series = crop_windows(series, window, seed)
        generator = train_generator(
            series,
            cfg,
            source={"store": str(data), "store_rows": int(len(rows)), "field": field},
            log_every=max(1, steps // 10),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    generator.save(out)
    history = generator.history
    head, tail = history[: min(10, steps)], history[-min(100, steps) :]
    click.echo(
        f"trained on {len(series)} series (L={generator.length}) from {len(rows)} rows of {data} "
        f"in {time.perf_counter() - started:.1f} s; loss {sum(head) / len(head):.3f} -> "
        f"{sum(tail) / len(tail):.3f}; wrote {out}"
    )


@oats.command("sample")
@click.option("--generator", "generator_path", required=True, help="Checkpoint (train-generator).")
@click.option("--guides", required=True, help="Guiding series: a store, a .npy or a .csv file.")
@click.option("--rows", default=None, help="Rows of the guides to use, START:STOP (default all).")
@click.option("--out", "out", required=True, help="Output: a store directory or a .npy file.")
@click.option(
    "--field",
    type=click.Choice(["x", "y", "both"]),
    default="y",
    show_default=True,
    help="Which channels of a guide store's rows are guides.",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=None,
    help="Guides longer than the generator's window: use points OFFSET.. of each "
    "[default: a random window per guide, from --seed].",
)
@click.option("--guidance-scale", type=float, default=None, help="CFG scale [default: config].")
@click.option("--ddim-steps", type=click.IntRange(min=1), default=None, help="[default: config]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def sample_command(
    generator_path: str,
    guides: str,
    rows: str | None,
    out: str,
    field: str,
    offset: int | None,
    guidance_scale: float | None,
    ddim_steps: int | None,
    seed: int,
) -> None:
    """Generate one series per guide; write a series-only store or a .npy file.

    Guides longer than the generator's window give one window each (--offset,
    or a seeded random offset); shorter guides are refused.
    """
    import numpy as np

    from s2gen.kernels.seeds import row_seeds
    from s2gen.oats.data import guide_windows, load_series
    from s2gen.oats.generator import Generator
    from s2gen.series_store import write_series
    from s2gen.store import StoreError
    from s2gen.store import open as open_store

    try:
        generator = Generator.load(generator_path)
        guide_series = guide_windows(
            load_series(guides, rows, field), generator.length, offset, seed
        )
        samples = generator.sample(
            guide_series, guidance_scale=guidance_scale, ddim_steps=ddim_steps, seed=seed
        )
    except (ValueError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    if out.lower().endswith(".npy"):
        np.save(out, samples)
    else:
        is_store = Path(guides).suffix.lower() not in (".npy", ".csv")
        config = open_store(guides).config if is_store else None
        source = {
            "generator": str(generator_path),
            "guides": str(guides),
            "rows": rows or "",
            "field": field,
            "offset": "random" if offset is None else offset,
            "guidance_scale": generator.cfg.guidance_scale
            if guidance_scale is None
            else guidance_scale,
            "ddim_steps": generator.cfg.ddim_steps if ddim_steps is None else ddim_steps,
            "seed": seed,
        }
        try:
            write_series(out, samples[:, None, :], row_seeds(seed, 0, len(samples)), source, config)
        except (ValueError, StoreError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(samples)} series of length {samples.shape[1]} to {out}")
