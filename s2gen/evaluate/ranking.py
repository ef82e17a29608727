"""Average ranks and wins/ties/losses of models across datasets.

Input is one score per (dataset, model): the mean over seeds of the ranked
metric (accuracy, higher is better, for classification and its fine-tuning;
MSE, lower is better, for forecasting and its fine-tuning; F1, higher is
better, for anomaly detection; ROC AUC, higher is better, for anomaly
fine-tuning). Only datasets on which every model has a score are ranked (the
others are listed), so all figures of one summary rest on the same datasets.
On each dataset the best model has rank 1 and models whose scores differ by
at most ``TIE_TOLERANCE`` share the mean of the ranks they span (Demšar,
"Statistical comparisons of classifiers over multiple data sets", JMLR 2006).
A model wins against another on a dataset when its score is better by more
than the tolerance, and ties within it.
"""

import numpy as np

TIE_TOLERANCE = 1e-9
RANKED_METRIC = {
    "classification": "accuracy",
    "finetune": "accuracy",
    "forecasting": "mse",
    "anomaly": "f1",
    "finetune-forecasting": "mse",
    "finetune-anomaly": "auc_roc",
}


def rank_scores(scores: dict[str, float], higher_is_better: bool) -> dict[str, float]:
    """Ranks of the models on one dataset: 1 = best, ties share their mean rank.

    Rank = 1 + (models better by more than the tolerance) + (other models
    within the tolerance) / 2.
    """
    values = np.array(list(scores.values()), dtype=np.float64)
    sign = 1.0 if higher_is_better else -1.0
    ranks = {}
    for model, value in scores.items():
        better = int(np.sum(sign * (values - value) > TIE_TOLERANCE))
        tied = int(np.sum(np.abs(values - value) <= TIE_TOLERANCE)) - 1
        ranks[model] = 1.0 + better + tied / 2.0
    return ranks


def rank_summary(table: dict[str, dict[str, float]], higher_is_better: bool) -> dict:
    """Mean score, mean rank and wins/ties/losses of every model.

    Parameters
    ----------
    table : {dataset: {model: score}}.
    higher_is_better : direction of the score.

    Returns
    -------
    {"datasets": the ranked datasets, "not_ranked": the others,
     "models": {model: {"mean", "mean_rank"}},
     "wins_ties_losses": {model: {other model: [wins, ties, losses]}}};
    models in order of first appearance.
    """
    models: list[str] = []
    for row in table.values():
        models.extend(model for model in row if model not in models)
    ranked = [name for name, row in table.items() if all(m in row for m in models)]
    sign = 1.0 if higher_is_better else -1.0
    ranks = {model: [] for model in models}
    for name in ranked:
        for model, rank in rank_scores(table[name], higher_is_better).items():
            ranks[model].append(rank)
    summary_models = {
        model: {
            "mean": float(np.mean([table[name][model] for name in ranked])) if ranked else None,
            "mean_rank": float(np.mean(ranks[model])) if ranked else None,
        }
        for model in models
    }
    record = {}
    for model in models:
        record[model] = {}
        for other in models:
            if other == model:
                continue
            diff = np.array([sign * (table[n][model] - table[n][other]) for n in ranked])
            wins = int(np.sum(diff > TIE_TOLERANCE))
            losses = int(np.sum(diff < -TIE_TOLERANCE))
            record[model][other] = [wins, len(ranked) - wins - losses, losses]
    return {
        "datasets": ranked,
        "not_ranked": [name for name in table if name not in ranked],
        "models": summary_models,
        "wins_ties_losses": record,
    }


def summary_markdown(task: str, metric: str, summary: dict) -> str:
    """One Markdown block: a row per model, its mean, mean rank and W/T/L against each other."""
    models = list(summary["models"])
    n = len(summary["datasets"])
    lines = [
        f"**{task}: summary over {n} dataset{'s' if n != 1 else ''}** ({metric} averaged over "
        "seeds per dataset; rank 1 = best, ties within 1e-9 share the mean rank; "
        "W/T/L = the row's wins/ties/losses against the column)",
        "",
        f"| model | mean {metric} | mean rank | " + " | ".join(f"vs {m}" for m in models) + " |",
        "|---|---:|---:|" + "---:|" * len(models),
    ]
    for model in models:
        cells = [
            "—" if other == model else "/".join(map(str, summary["wins_ties_losses"][model][other]))
            for other in models
        ]
        entry = summary["models"][model]
        mean = "—" if entry["mean"] is None else f"{entry['mean']:.4f}"
        rank = "—" if entry["mean_rank"] is None else f"{entry['mean_rank']:.2f}"
        lines.append(f"| {model} | {mean} | {rank} | " + " | ".join(cells) + " |")
    if summary["not_ranked"]:
        lines += ["", "Not ranked (a model has no result): " + ", ".join(summary["not_ranked"])]
    lines.append("")
    return "\n".join(lines)
