"""Anomaly detection on a labelled series: scores, the threshold rule, F1 with point adjustment.

The protocol follows TS2Vec (Yue et al., AAAI 2022, section 4.3, the normal
setting), without its delay:

- the series is split in time: the first ``1 - test_fraction`` part (half by
  default, as TS2Vec) only sets the threshold, the tail is tested; values are
  z-normalised with the first part's mean and standard deviation;
- every point t gets a score from the ``context`` points ending at t (so only the
  past is used); a score method is a row of ``ANOMALY_SCORES``;
- the threshold is mean + ``k`` standard deviations of the first part's scores
  (TS2Vec: k = 4); a tested point is flagged when its score exceeds it;
- point adjustment (Xu et al., "Unsupervised anomaly detection via variational
  auto-encoder for seasonal KPIs", WWW 2018): when any point of a labelled anomalous
  segment is flagged, the whole segment counts as detected; no delay (TS2Vec
  counts a segment only when it is flagged within 7 or 3 points of its start);
  then precision, recall and F1 over the tested points. Labels are never used to
  set the threshold. Point adjustment is generous (random flags can score well
  under it; Kim et al., AAAI 2022), so ``info`` also holds the ROC AUC of the raw
  test scores against the point labels, threshold-free and without adjustment.

Scores:

- ``masking`` (TS2Vec): the state of the window's last token (the one holding t)
  with the point t as observed and with t masked; the score is the L1 distance
  of the two, taken relative to the mean of the previous ``SMOOTH`` = 21 scores,
  (a - mean) / mean, as TS2Vec does to follow drift. TS2Vec masks the point's
  latent input; a token here may be a patch of many points, so the point is
  masked in the input instead, as a missing last point is filled: by the value
  before it (for a per-step backbone the two differ only in where the mask acts).

Baselines, through the same threshold rule: ``zscore`` (the point's distance to
the mean of the ``context`` points before it, in their standard deviations) and
``random`` (standard normal scores, seed 0).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2gen.checks import check_float, check_int, fail
from s2gen.evaluate.preprocess import EPS
from s2gen.evaluate.series_format import read_labelled

SMOOTH = 21  # TS2Vec: a masking score is taken relative to the mean of the previous 21
THRESHOLD_STDS = 4.0  # TS2Vec: threshold = mean + 4 std of the first part's scores
MIN_THRESHOLD_SCORES = 10
RANDOM_SEED = 0


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of the anomaly protocol.

    Attributes
    ----------
    context : points of the window that ends at a scored point.
    test_fraction : share of the series (its tail) that is tested.
    score : the score method of the encoders, a name of ``ANOMALY_SCORES``.
    k : the threshold is mean + k std of the first part's scores.
    """

    context: int = 48
    test_fraction: float = 0.5
    score: str = "masking"
    k: float = THRESHOLD_STDS

    def __post_init__(self):
        check_int("context", self.context, 2)
        check_float("test_fraction", self.test_fraction, 0.0, 1.0, open_low=True)
        if self.test_fraction >= 1.0:
            fail("test_fraction", self.test_fraction, "it must be in (0, 1)")
        if self.score not in ANOMALY_SCORES:
            fail("score", self.score, f"choose one of {', '.join(ANOMALY_SCORES)}")
        check_float("k", self.k, 0.0)


@dataclass(frozen=True)
class AnomalySeries:
    """A series with point labels.

    Attributes
    ----------
    name : series name.
    values : (T,) float64, gaps filled.
    labels : (T,) bool, True = anomalous.
    source : where the file was found.
    """

    name: str
    values: np.ndarray
    labels: np.ndarray
    source: str

    def __post_init__(self):
        if self.values.ndim != 1 or self.labels.shape != self.values.shape:
            raise ValueError(
                f"{self.name}: values {self.values.shape} and labels {self.labels.shape} must "
                "be 1-D of one length"
            )


# shipped labelled series (sktime): "data,label" CSVs
ANOMALY = {
    "yahoo": ("sktime", "datasets/data/yahoo/yahoo.csv"),  # Yahoo S5, 1000 points, 7 anomalous
    "mitdb": ("sktime", "datasets/data/mitdb/mitdb.csv"),  # MIT-BIH ECG, 7500 points, 352
}


def load_anomaly(
    name_or_path: str | Path, column: str | None = None, label_column: str = "label"
) -> AnomalySeries:
    """A labelled series: a shipped one by name (``ANOMALY``, case-insensitive) or a CSV path.

    A CSV holds the series in ``column`` (default: the last column but the labels) and 0/1
    point labels in ``label_column`` (``series_format.read_labelled``).
    """
    from s2gen.evaluate.datasets import (
        _lookup,
        _missing_package_error,
        _unknown_name_error,
        package_dir,
    )

    path = Path(name_or_path)
    if path.is_file():
        return AnomalySeries(path.stem, *read_labelled(path, column, label_column), str(path))
    key = _lookup(str(name_or_path), ANOMALY)
    if key is None:
        raise _unknown_name_error(
            "anomaly", str(name_or_path), ANOMALY, "a .csv with a value and a 0/1 label column"
        )
    package, relative = ANOMALY[key]
    root = package_dir(package)
    if root is None or not (root / relative).is_file():
        raise _missing_package_error("anomaly", key, [package])
    values, labels = read_labelled(root / relative, None, "label")
    return AnomalySeries(key, values, labels, f"{package}:{relative}")


# ---------------------------------------------------------------- scores


def windows_ending_at_each_point(values: np.ndarray, context: int) -> np.ndarray:
    """The windows x[t - context + 1 .. t] for t = context - 1 .. T - 1: a (T - context + 1,
    context) read-only view."""
    return np.lib.stride_tricks.sliding_window_view(values, context)


def relative_to_recent(scores: np.ndarray, span: int = SMOOTH) -> np.ndarray:
    """(a_t - m_t) / m_t with m_t the mean of a_{t-span} .. a_{t-1} (TS2Vec's adjustment).

    NaN where fewer than ``span`` finite scores precede t; m_t is floored at 1e-8.
    """
    scores = np.asarray(scores, np.float64)
    out = np.full(scores.shape, np.nan)
    if scores.size <= span:
        return out
    previous = np.lib.stride_tricks.sliding_window_view(scores[:-1], span).mean(axis=1)
    mean = np.maximum(previous, EPS)  # (T - span,), the mean before t = span ..
    out[span:] = (scores[span:] - mean) / mean
    return out


def masking_scores(model, values: np.ndarray, cfg: AnomalyConfig) -> np.ndarray:
    """TS2Vec's masking score of every point (see the module docstring).

    Parameters
    ----------
    model : a frozen encoder with ``last_token(windows)`` -> (n, d)
        (``s2gen.evaluate.frozen.FrozenEncoder``).
    values : (T,) z-normalised series.
    cfg : the protocol settings (``context``).

    Returns
    -------
    (T,) float64, NaN for the first ``context - 1 + SMOOTH`` points.
    """
    if not hasattr(model, "last_token"):
        raise ValueError(
            "the masking score needs an encoder's token states; give --checkpoint or --random-init"
        )
    windows = windows_ending_at_each_point(values.astype(np.float32), cfg.context)
    masked = np.array(windows)  # (n, context), a copy
    masked[:, -1] = masked[:, -2]  # the scored point hidden: the value before it
    change = np.abs(model.last_token(windows) - model.last_token(masked)).sum(axis=1)  # (n,)
    raw = np.full(values.shape, np.nan)
    raw[cfg.context - 1 :] = change
    return relative_to_recent(raw)


def zscore_scores(values: np.ndarray, context: int) -> np.ndarray:
    """|x_t - mean| / std of the ``context`` points before t; (T,), NaN for t < context."""
    before = np.lib.stride_tricks.sliding_window_view(values[:-1], context)  # (T - context, c)
    out = np.full(values.shape, np.nan)
    std = np.maximum(before.std(axis=1), EPS)
    out[context:] = np.abs(values[context:] - before.mean(axis=1)) / std
    return out


# score name -> score(model, z-normalised values (T,), cfg) -> (T,) scores, NaN where undefined
ANOMALY_SCORES: dict[str, Callable[..., np.ndarray]] = {
    "masking": masking_scores,
}
ANOMALY_BASELINES = ("zscore", "random")


# ---------------------------------------------------------------- evaluation


def segments(labels: np.ndarray) -> np.ndarray:
    """(n, 2) [start, stop) of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def point_adjust(flags: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Flags with every labelled segment that holds a flag flagged whole (no delay)."""
    adjusted = flags.astype(bool).copy()
    for start, stop in segments(labels):
        if adjusted[start:stop].any():
            adjusted[start:stop] = True
    return adjusted


def point_adjusted_f1(flags: np.ndarray, labels: np.ndarray) -> dict:
    """Precision, recall and F1 over points after ``point_adjust``; 0 where undefined."""
    labels = labels.astype(bool)
    adjusted = point_adjust(flags, labels)
    hits = int(np.sum(adjusted & labels))
    precision = hits / max(int(adjusted.sum()), 1)
    recall = hits / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def split_point(size: int, cfg: AnomalyConfig) -> int:
    """Index of the first tested point."""
    return int(round(size * (1.0 - cfg.test_fraction)))


def evaluate_scores(scores: np.ndarray, labels: np.ndarray, split: int, k: float) -> dict:
    """The threshold rule and the point-adjusted F1 of one score series.

    Parameters
    ----------
    scores : (T,) scores, NaN where undefined (never flagged).
    labels : (T,) bool.
    split : first tested index; ``scores[:split]`` set the threshold.
    k : threshold = mean + k std of the finite scores before ``split``.

    Returns
    -------
    {"f1", "precision", "recall", "auc_roc", "threshold", "flagged", "segments",
     "detected"} over the tested points.
    """
    from sklearn.metrics import roc_auc_score

    train = scores[:split][np.isfinite(scores[:split])]
    if train.size < MIN_THRESHOLD_SCORES:
        raise ValueError(
            f"{train.size} scores before the tested part set the threshold (need "
            f"{MIN_THRESHOLD_SCORES}); shorten --context or lower --test-fraction"
        )
    threshold = float(train.mean() + k * train.std())
    test, truth = scores[split:], labels[split:].astype(bool)
    if not np.isfinite(test).all():
        raise ValueError("a tested point has no score; shorten --context or lower --test-fraction")
    flags = test > threshold
    found = segments(truth)
    adjusted = point_adjust(flags, truth)
    result = point_adjusted_f1(flags, truth)
    return {
        **result,
        "auc_roc": float(roc_auc_score(truth, test)) if not truth.all() else float("nan"),
        "threshold": threshold,
        "flagged": int(flags.sum()),
        "segments": int(len(found)),
        "detected": int(sum(adjusted[a] for a, _ in found)),
    }


def _prepared(series: AnomalySeries, cfg: AnomalyConfig) -> tuple[np.ndarray, int]:
    """(z-normalised values, split); errors when the tested part has no anomaly."""
    split = split_point(series.values.size, cfg)
    if split < cfg.context + SMOOTH + MIN_THRESHOLD_SCORES:
        raise ValueError(
            f"{series.name}: the first {split} points cannot set a threshold with "
            f"context={cfg.context} (need {cfg.context + SMOOTH + MIN_THRESHOLD_SCORES}); "
            "shorten --context or lower --test-fraction"
        )
    if not series.labels[split:].any():
        raise ValueError(
            f"{series.name}: the tested part (the last {series.values.size - split} points) "
            "has no labelled anomaly; F1 is undefined there: raise --test-fraction"
        )
    head = series.values[:split]
    return (series.values - head.mean()) / max(head.std(), EPS), split


def anomaly_probe(model, series: AnomalySeries, cfg: AnomalyConfig) -> dict:
    """Score every point with ``cfg.score`` of ``model`` and evaluate (``evaluate_scores``).

    Returns ``evaluate_scores``' dict plus "score" and "n_test".
    """
    values, split = _prepared(series, cfg)
    scores = ANOMALY_SCORES[cfg.score](model, values, cfg)
    result = evaluate_scores(scores, series.labels, split, cfg.k)
    return {**result, "score": cfg.score, "n_test": int(values.size - split)}


def anomaly_baselines(series: AnomalySeries, cfg: AnomalyConfig) -> dict:
    """{"zscore": result, "random": result} under the same split and threshold rule."""
    values, split = _prepared(series, cfg)
    rng = np.random.default_rng(RANDOM_SEED)
    scores = {
        "zscore": zscore_scores(values, cfg.context),
        "random": rng.standard_normal(values.size),
    }
    return {
        name: {
            **evaluate_scores(found, series.labels, split, cfg.k),
            "n_test": int(values.size - split),
        }
        for name, found in scores.items()
    }
