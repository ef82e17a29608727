"""Run models x datasets x seeds through one protocol and collect records.

A record is a plain dict, one per (model, dataset, seed)::

    {"task": "classification", "dataset": "GunPoint", "model": "random-init",
     "seed": 0, "metrics": {"accuracy": 0.91}, "info": {"C": 0.1, "dim": 128}}

A model whose output depends on a seed (a random initialisation) runs once per
seed; a deterministic one (a checkpoint, since the probes' solvers are
deterministic or fixed-seed, and the classical baselines) runs once with seed
None. ``info["seconds"]`` is the wall time of a classification baseline or
probe (embedding included).

Datasets are evaluated one after the other (baselines, then models), so only
one is held in memory when they are streamed (``skipped`` given).
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from s2gen.evaluate import baselines
from s2gen.evaluate.anomaly import AnomalyConfig, anomaly_baselines, anomaly_probe, load_anomaly
from s2gen.evaluate.datasets import load_classification, load_forecasting
from s2gen.evaluate.protocols import (
    ClassificationConfig,
    Embed,
    ForecastConfig,
    classification_probe,
    forecasting_probe,
)

log = logging.getLogger(__name__)

TASKS = ("classification", "forecasting", "anomaly")
METRICS = {"classification": ("accuracy",), "forecasting": ("mse", "mae"), "anomaly": ("f1",)}
# what a dataset may raise that skips it when the run keeps going (not TypeError & co.: bugs)
DATASET_ERRORS = (ValueError, ImportError, OSError, RuntimeError, MemoryError)


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
    task : "classification", "forecasting" or "anomaly".
    datasets : names or paths (``s2gen.evaluate.datasets``; anomaly: labelled .csv paths).
    seeds : seeds for seeded models.
    classification : the classifier settings (classification task).
    forecast : the windowing settings (forecasting task; required there).
    baselines : whether to add the classical baselines.
    dtw : whether to add 1-NN DTW (classification; slow, independent of
        ``baselines``).
    column : forecasting series given by path: the file's column (default last);
        anomaly: the series' column (default: the last but the label column).
    period : forecasting: seasonal period for every series (default: the
        registry's for names, none for paths).
    anomaly : the anomaly protocol's settings (anomaly task; required there).
    label_column : anomaly: the column of the 0/1 point labels (required there).
    """

    task: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    forecast: ForecastConfig | None = None
    baselines: bool = True
    dtw: bool = False
    column: str | None = None
    period: int | None = None
    anomaly: AnomalyConfig | None = None
    label_column: str | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: choose one of {TASKS}")
        if not self.datasets:
            raise ValueError("datasets is empty: name at least one dataset")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds} must be non-empty and distinct")
        if self.task == "forecasting" and self.forecast is None:
            raise ValueError("forecast is None: the forecasting task needs a ForecastConfig")
        if self.task == "anomaly" and (self.anomaly is None or self.label_column is None):
            raise ValueError("the anomaly task needs an AnomalyConfig and a label_column")
        if self.task == "classification" and (self.column, self.period) != (None, None):
            raise ValueError("column and period apply to the forecasting task only")
        if self.task == "anomaly" and self.period is not None:
            raise ValueError("period applies to the forecasting task only")
        if self.period is not None and self.period < 2:
            raise ValueError(f"period={self.period} must be at least 2")
        if self.dtw and self.task != "classification":
            raise ValueError("dtw=True: 1-NN DTW is a classification baseline")


def _record(cfg: SuiteConfig, dataset: str, model: str, seed: int | None, result: dict) -> dict:
    task = cfg.task
    metrics = {name: result[name] for name in METRICS[task]}
    info = {key: value for key, value in result.items() if key not in metrics}
    if task == "forecasting":
        info.update(horizon=cfg.forecast.horizon, context=cfg.forecast.context)
        info.setdefault("protocol", cfg.forecast.protocol)
    elif task == "anomaly":
        info.update(context=cfg.anomaly.context, test_fraction=cfg.anomaly.test_fraction)
    return {
        "task": task,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "metrics": metrics,
        "info": info,
    }


def _timed(function: Callable[[], dict]) -> dict:
    start = time.perf_counter()
    result = function()
    return {**result, "seconds": round(time.perf_counter() - start, 3)}


def _baseline_records(cfg: SuiteConfig, name: str, data) -> list[dict]:
    if cfg.task == "classification":
        args = (data.train.series, data.train.labels, data.test.series, data.test.labels)
        runs = {}
        if cfg.baselines:
            runs = {
                "1nn-euclidean": lambda: baselines.nn1_euclidean(*args),
                "logreg-raw": lambda: baselines.logreg_raw(*args, cfg.classification),
                "catch22-rf": lambda: baselines.catch22_rf(*args),
                "minirocket": lambda: baselines.minirocket_ridge(*args),
            }
        if cfg.dtw:
            runs[baselines.DTW_BASELINE] = lambda: baselines.nn1_dtw(*args)
        results = {}
        for model, run in runs.items():
            log.info("%s on %s", model, name)
            results[model] = _timed(run)
    elif cfg.baselines and cfg.task == "anomaly":
        results = anomaly_baselines(data, cfg.anomaly)
    elif cfg.baselines:
        results = baselines.forecast_baselines(data.values, data.period, cfg.forecast)
    else:
        results = {}
    return [_record(cfg, name, model, None, result) for model, result in results.items()]


def _probe(cfg: SuiteConfig, embed: Embed, data) -> dict:
    if cfg.task == "classification":
        return _timed(
            lambda: classification_probe(
                embed,
                data.train.series,
                data.train.labels,
                data.test.series,
                data.test.labels,
                cfg.classification,
            )
        )
    if cfg.task == "anomaly":
        return anomaly_probe(embed, data, cfg.anomaly)
    return forecasting_probe(embed, data.values, cfg.forecast)


def _load(cfg: SuiteConfig, dataset: str):
    if cfg.task == "classification":
        return load_classification(dataset)
    if cfg.task == "anomaly":
        return load_anomaly(dataset, cfg.column, cfg.label_column)
    return load_forecasting(dataset, cfg.column, cfg.period)


def _datasets(cfg: SuiteConfig, skipped: list[dict] | None) -> Iterator:
    """The loaded datasets: all up front (a bad one stops the run) or one at a time."""
    if skipped is None:
        loaded = {}
        for dataset in cfg.datasets:
            data = _load(cfg, dataset)
            if data.name in loaded:
                raise ValueError(f"dataset {data.name!r} is listed twice")
            loaded[data.name] = data
        yield from loaded.values()
        return
    seen = set()
    for dataset in cfg.datasets:
        try:
            data = _load(cfg, dataset)
        except DATASET_ERRORS as error:
            log.warning("%s: not loaded: %s", dataset, error)
            skipped.append({"dataset": dataset, "error": f"{type(error).__name__}: {error}"})
            continue
        if data.name in seen:
            skipped.append({"dataset": dataset, "error": f"{data.name!r} is listed twice"})
            continue
        seen.add(data.name)
        yield data


def run_suite(
    models: list[ModelSpec], cfg: SuiteConfig, skipped: list[dict] | None = None
) -> list[dict]:
    """Evaluate every model on every dataset (and seed), plus the baselines.

    Parameters
    ----------
    models : the encoders under test.
    cfg : task, datasets, seeds and protocol settings.
    skipped : None: every dataset is loaded first and any error stops the run.
        A list: datasets are loaded one at a time, and one that fails to load
        or to run (``DATASET_ERRORS``) is appended as {"dataset", "error"},
        its records are dropped, and the run goes on.

    Returns
    -------
    Records dataset by dataset, baselines then models; see the module docstring.
    """
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names {names} must be distinct")
    embeds = {
        (model.name, seed): model.make_embed(seed)
        for model in models
        for seed in (cfg.seeds if model.seeded else (None,))
    }
    records = []
    for data in _datasets(cfg, skipped):
        found = []
        try:
            found.extend(_baseline_records(cfg, data.name, data))
            for (model, seed), embed in embeds.items():
                log.info("%s seed %s on %s", model, seed, data.name)
                found.append(_record(cfg, data.name, model, seed, _probe(cfg, embed, data)))
        except DATASET_ERRORS as error:
            if skipped is None:
                raise
            log.warning("%s: not evaluated: %s", data.name, error)
            skipped.append({"dataset": data.name, "error": f"{type(error).__name__}: {error}"})
            continue
        records.extend(found)
    return records
