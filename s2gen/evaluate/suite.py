"""Run models x datasets x seeds through one protocol and collect records.

A record is a plain dict, one per (model, dataset, seed)::

    {"task": "classification", "dataset": "GunPoint", "model": "random-init",
     "seed": 0, "metrics": {"accuracy": 0.91}, "info": {"C": 0.1, "dim": 128}}

A model whose output depends on a seed (a random initialisation) runs once per
seed; a deterministic one (a checkpoint, since the probes' solvers are
deterministic, and the classical baselines) runs once with seed None.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from s2gen.evaluate import baselines
from s2gen.evaluate.datasets import load_classification, load_forecasting
from s2gen.evaluate.protocols import (
    ClassificationConfig,
    Embed,
    ForecastConfig,
    classification_probe,
    forecasting_probe,
)

log = logging.getLogger(__name__)

TASKS = ("classification", "forecasting")
METRICS = {"classification": ("accuracy",), "forecasting": ("mse", "mae")}


@dataclass(frozen=True)
class ModelSpec:
    """One model under evaluation.

    Attributes
    ----------
    name : column name in the results table.
    make_embed : seed -> embed callable; called once per seed (or once with
        None when ``seeded`` is False).
    seeded : whether the model changes with the seed.
    """

    name: str
    make_embed: Callable[[int | None], Embed]
    seeded: bool


@dataclass(frozen=True)
class SuiteConfig:
    """What to evaluate.

    Attributes
    ----------
    task : "classification" or "forecasting".
    datasets : names or paths (``s2gen.evaluate.datasets``).
    seeds : seeds for seeded models.
    classification : the classifier settings (classification task).
    forecast : the windowing settings (forecasting task; required there).
    baselines : whether to add the classical baselines.
    column : forecasting series given by path: the file's column (default last).
    period : forecasting: seasonal period for every series (default: the
        registry's for names, none for paths).
    """

    task: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    forecast: ForecastConfig | None = None
    baselines: bool = True
    column: str | None = None
    period: int | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: choose one of {TASKS}")
        if not self.datasets:
            raise ValueError("datasets is empty: name at least one dataset")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds} must be non-empty and distinct")
        if self.task == "forecasting" and self.forecast is None:
            raise ValueError("forecast is None: the forecasting task needs a ForecastConfig")
        if self.task == "classification" and (self.column, self.period) != (None, None):
            raise ValueError("column and period apply to the forecasting task only")
        if self.period is not None and self.period < 2:
            raise ValueError(f"period={self.period} must be at least 2")


def _record(cfg: SuiteConfig, dataset: str, model: str, seed: int | None, result: dict) -> dict:
    task = cfg.task
    metrics = {name: result[name] for name in METRICS[task]}
    info = {key: value for key, value in result.items() if key not in metrics}
    if task == "forecasting":
        info.update(horizon=cfg.forecast.horizon, context=cfg.forecast.context)
    return {
        "task": task,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "metrics": metrics,
        "info": info,
    }


def _baseline_records(cfg: SuiteConfig, name: str, data) -> list[dict]:
    if cfg.task == "classification":
        args = (data.train.series, data.train.labels, data.test.series, data.test.labels)
        results = {
            "1nn-euclidean": baselines.nn1_euclidean(*args),
            "logreg-raw": baselines.logreg_raw(*args, cfg.classification),
        }
    else:
        results = baselines.forecast_baselines(data.values, data.period, cfg.forecast)
    return [_record(cfg, name, model, None, result) for model, result in results.items()]


def _probe(cfg: SuiteConfig, embed: Embed, data) -> dict:
    if cfg.task == "classification":
        return classification_probe(
            embed,
            data.train.series,
            data.train.labels,
            data.test.series,
            data.test.labels,
            cfg.classification,
        )
    return forecasting_probe(embed, data.values, cfg.forecast)


def run_suite(models: list[ModelSpec], cfg: SuiteConfig) -> list[dict]:
    """Evaluate every model on every dataset (and seed), plus the baselines.

    Parameters
    ----------
    models : the encoders under test.
    cfg : task, datasets, seeds and protocol settings.

    Returns
    -------
    Records in the order baselines, then models; see the module docstring.
    """
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names {names} must be distinct")
    loaded = {}
    for dataset in cfg.datasets:
        if cfg.task == "classification":
            data = load_classification(dataset)
        else:
            data = load_forecasting(dataset, cfg.column, cfg.period)
        if data.name in loaded:
            raise ValueError(f"dataset {data.name!r} is listed twice")
        loaded[data.name] = data
    records = []
    for name, data in loaded.items():
        if cfg.baselines:
            records.extend(_baseline_records(cfg, name, data))
    for model in models:
        for seed in cfg.seeds if model.seeded else (None,):
            embed = model.make_embed(seed)
            for name, data in loaded.items():
                log.info("%s seed %s on %s", model.name, seed, name)
                records.append(_record(cfg, name, model.name, seed, _probe(cfg, embed, data)))
    return records
