"""Write evaluation records as results.json, a Markdown table and a chart.

Records are the dicts of ``s2gen.evaluate.suite`` (task, dataset, model,
seed, metrics, info). The table has one block per task and metric, a row per
dataset and a column per model; a cell is the mean over seeds, followed by
``± std`` (sample standard deviation) when there are several seeds. The best
mean of a row is bold (highest accuracy, lowest MSE/MAE). Below the tables,
per task, the models' mean score, average rank and wins/ties/losses against
each other (``s2gen.evaluate.ranking``), and the datasets that could not be
evaluated, with the reason.

results.json holds ``s2gen_version``, ``config``, ``records``, ``summary``
({task: {"metric", "datasets", "not_ranked", "models", "wins_ties_losses"}})
and ``skipped`` ([{"dataset", "error"}]).
"""

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

import s2gen
from s2gen.evaluate.ranking import RANKED_METRIC, rank_summary, summary_markdown

HIGHER_IS_BETTER = {
    "accuracy": True,
    "mse": False,
    "mae": False,
    "f1": True,
    "auc_roc": True,
    "auc_pr": True,
}
FILES = ("results.json", "results.md", "results.png")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _row_label(record: dict) -> str:
    """The dataset name, with the horizon for forecasting records ("airline H=12")."""
    horizon = record.get("info", {}).get("horizon")
    return record["dataset"] if horizon is None else f"{record['dataset']} H={horizon}"


def summarise(records: list[dict]) -> dict:
    """Group records by (task, metric, dataset, model).

    Returns
    -------
    {(task, metric): {row: {model: (mean, std, n)}}}, rows (the dataset, with
    "H=<horizon>" for forecasting) and models in order of first appearance;
    std is 0 for one value.
    """
    values = defaultdict(list)
    for record in records:
        dataset = _row_label(record)
        for metric, value in record["metrics"].items():
            values[(record["task"], metric, dataset, record["model"])].append(value)
    table: dict = {}
    for (task, metric, dataset, model), found in values.items():
        array = np.asarray(found, dtype=np.float64)
        std = float(array.std(ddof=1)) if array.size > 1 else 0.0
        cell = (float(array.mean()), std, int(array.size))
        table.setdefault((task, metric), {}).setdefault(dataset, {})[model] = cell
    return table


def _cell(mean: float, std: float, n: int, best: bool) -> str:
    text = f"{mean:.4f}" if n == 1 else f"{mean:.4f} ± {std:.4f}"
    return f"**{text}**" if best else text


def _models(block: dict) -> list[str]:
    models: list[str] = []
    for row in block.values():
        models.extend(model for model in row if model not in models)
    return models


def markdown_table(records: list[dict]) -> str:
    """The Markdown results table (see the module docstring)."""
    lines = []
    for (task, metric), block in summarise(records).items():
        models = _models(block)
        direction = "higher" if HIGHER_IS_BETTER.get(metric, True) else "lower"
        lines.append(f"**{task}: {metric}** ({direction} is better; mean ± std over seeds)")
        lines.append("")
        lines.append("| dataset | " + " | ".join(models) + " |")
        lines.append("|---|" + "---:|" * len(models))
        for dataset, row in block.items():
            means = [row[m][0] for m in models if m in row]
            best = max(means) if HIGHER_IS_BETTER.get(metric, True) else min(means)
            cells = [
                _cell(*row[m], best=math.isclose(row[m][0], best)) if m in row else "—"
                for m in models
            ]
            lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_results(records: list[dict], path: str | Path) -> None:
    """A grouped bar chart: one panel per (task, metric), a bar per model.

    Error bars are the standard deviation over seeds. Needs matplotlib
    (``pip install 's2gen[eval]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"results.png needs matplotlib: pip install 's2gen[eval]' ({error})"
        ) from None
    table = summarise(records)
    fig, axes = plt.subplots(
        len(table), 1, figsize=(10, 3.6 * len(table)), squeeze=False, constrained_layout=True
    )
    for ax, ((task, metric), block) in zip(axes[:, 0], table.items(), strict=True):
        models = _models(block)
        datasets = list(block)
        width = 0.8 / len(models)
        positions = np.arange(len(datasets))
        for k, model in enumerate(models):
            cells = [block[d].get(model, (np.nan, 0.0, 0)) for d in datasets]
            means = [c[0] for c in cells]
            stds = [c[1] for c in cells]
            ax.bar(
                positions + (k - (len(models) - 1) / 2) * width,
                means,
                width,
                yerr=stds,
                capsize=2,
                label=model,
            )
        ax.set_xticks(positions, datasets)
        ax.set_ylabel(metric)
        ax.set_title(f"{task}: {metric}")
        if not HIGHER_IS_BETTER.get(metric, True):
            ax.set_yscale("log")
        ax.legend(fontsize=7, ncols=min(len(models), 4))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rank_summaries(records: list[dict]) -> dict:
    """{task: {"metric": ranked metric, **ranking.rank_summary}} for every task in ``records``."""
    summaries = {}
    for (task, metric), block in summarise(records).items():
        if RANKED_METRIC.get(task) != metric:
            continue
        means = {
            row: {model: cell[0] for model, cell in cells.items()} for row, cells in block.items()
        }
        summaries[task] = {"metric": metric, **rank_summary(means, HIGHER_IS_BETTER[metric])}
    return summaries


def _skipped_markdown(skipped: list[dict]) -> str:
    lines = [f"**Not evaluated ({len(skipped)})**", ""]
    lines += [f"- {entry['dataset']}: {entry['error']}" for entry in skipped]
    return "\n".join([*lines, ""])


def write_results(
    records: list[dict],
    out_dir: str | Path,
    config: dict | None = None,
    skipped: list[dict] | None = None,
) -> str:
    """Write results.json, results.md and results.png into ``out_dir``.

    Parameters
    ----------
    records : suite records.
    out_dir : created if missing; the three files are overwritten.
    config : what was run (options, checkpoints), stored in results.json.
    skipped : datasets that failed to load or to run, {"dataset", "error"} each.

    Returns
    -------
    The Markdown of results.md: tables, rank summaries, skipped datasets.
    """
    if not records:
        raise ValueError("records is empty: nothing was evaluated")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = rank_summaries(records)
    document = {
        "s2gen_version": s2gen.__version__,
        "config": config or {},
        "records": records,
        "summary": summaries,
        "skipped": list(skipped or []),
    }
    (out / "results.json").write_text(json.dumps(document, indent=1))
    parts = [markdown_table(records)]
    for task, summary in summaries.items():
        if len(summary["models"]) > 1:
            parts.append(summary_markdown(task, summary["metric"], summary))
    if skipped:
        parts.append(_skipped_markdown(skipped))
    table = "\n".join(parts)
    (out / "results.md").write_text(table)
    plot_results(records, out / "results.png")
    return table
