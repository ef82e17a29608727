"""Labelled anomaly series, by name (shipped in sktime) or by path; never downloaded.

A series is a CSV of two columns, the value and a 0/1 label per point, with a
header row (sktime's ``yahoo.csv``: one Yahoo Webscope S5 series, 1000 points,
7 anomalous; ``mitdb.csv``: an MIT-BIH ECG record, 7500 points, 352 anomalous).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2gen.evaluate.datasets import (
    _lookup,
    _missing_package_error,
    _unknown_name_error,
    package_dir,
)

ANOMALY = {
    "yahoo": ("sktime", "datasets/data/yahoo/yahoo.csv"),
    "mitdb": ("sktime", "datasets/data/mitdb/mitdb.csv"),
}


@dataclass(frozen=True)
class AnomalySeries:
    """One series with per-point labels.

    Attributes
    ----------
    name : series name.
    values : (T,) float64.
    labels : (T,) int8, 1 = anomalous.
    source : where the file was found.
    """

    name: str
    values: np.ndarray
    labels: np.ndarray
    source: str


def read_labelled(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(values, labels) of a CSV "value,label" with a header row; errors name the file."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a CSV of numbers under one header row ({exc})") from None
    if table.shape[1] != 2 or table.shape[0] < 2:
        raise ValueError(f"{path}: give two columns, value and 0/1 label, one row per point")
    values, labels = table[:, 0], table[:, 1]
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: the values hold NaN or inf; fill the gaps first")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{path}: the label column must hold 0 (normal) or 1 (anomalous)")
    return values, labels.astype(np.int8)


def load_anomaly(name_or_path: str | Path) -> AnomalySeries:
    """Load a labelled series by name (``ANOMALY``, case-insensitive) or by CSV path."""
    path = Path(name_or_path)
    if path.exists():
        return AnomalySeries(path.stem, *read_labelled(path), str(path))
    key = _lookup(str(name_or_path), ANOMALY)
    if key is None:
        raise _unknown_name_error("anomaly", str(name_or_path), ANOMALY, "a value,label .csv")
    package, relative = ANOMALY[key]
    root = package_dir(package)
    if root is None or not (root / relative).is_file():
        raise _missing_package_error("anomaly", key, [package])
    return AnomalySeries(key, *read_labelled(root / relative), f"{package}:{relative}")
