"""Reader for forecasting series stored as ``.csv`` or ``.npy``.

CSV: an optional header row (detected when a field of the first row is not a
number, or stated by ``header_row``), then one row per time step. The series
is one column, chosen by header name or 0-based index; by default the last
column (``Date,Passengers`` gives ``Passengers``). Empty fields, ``NA``,
``NaN`` and ``?`` are missing values, filled by linear interpolation in time.

NPY: a 1-D array, or a 2-D array (T, k) from which one column is taken (the
last by default, as the ``OT`` target column of the ETT files).

``read_columns`` reads every numeric column of a CSV at once (pretraining on
unlabeled series: each column one series).
A labelled series for anomaly detection (``read_labelled``) is a CSV with the
series in one column and 0/1 point labels in another.
"""

import csv
import logging
from pathlib import Path

import numpy as np

from s2gen.evaluate.preprocess import fill_gaps

log = logging.getLogger(__name__)

MISSING_TOKENS = ("", "na", "nan", "?", "null", "none")
SUFFIXES = (".csv", ".npy")


def _to_float(token: str) -> float | None:
    """A number, NaN for a missing token, None when the token is not a number."""
    token = token.strip()
    if token.lower() in MISSING_TOKENS:
        return np.nan
    try:
        return float(token)
    except ValueError:
        return None


def _pick_column(header: list[str] | None, width: int, column: str | int | None, name: str) -> int:
    if column is None:
        return width - 1
    if header is not None and isinstance(column, str) and column in header:
        return header.index(column)
    if isinstance(column, int) or (isinstance(column, str) and column.lstrip("-").isdigit()):
        index = int(column)
        if not -width <= index < width:
            raise ValueError(f"column={column!r} is out of range: {name} has {width} columns")
        return index % width
    known = ", ".join(header) if header else f"indices 0..{width - 1} (no header)"
    raise ValueError(f"column={column!r} is not in {name}; choose one of: {known}")


def _csv_table(path: Path, header_row: bool | None):
    """(header or None, [(line number, fields)], width) of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(number, row) for number, row in enumerate(csv.reader(handle), start=1) if row]
    if not rows:
        raise ValueError(f"{path.name} is empty")
    header = None
    first = rows[0][1]
    if header_row is None:
        header_row = any(_to_float(field) is None for field in first)
    if header_row:
        header = [field.strip() for field in first]
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path.name} has a header but no data rows")
    width = len(header) if header is not None else len(rows[0][1])
    return header, rows, width


def _column_values(path: Path, rows: list, width: int, index: int) -> np.ndarray:
    """Column ``index`` as float64; NaN for missing tokens."""
    values = np.empty(len(rows))
    for i, (number, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path.name} line {number}: {len(row)} fields, expected {width}")
        value = _to_float(row[index])
        if value is None:
            raise ValueError(
                f"{path.name} line {number}: {row[index]!r} in column {index} is not a number"
            )
        values[i] = value
    return values


def _read_csv(path: Path, column: str | int | None, header_row: bool | None) -> np.ndarray:
    header, rows, width = _csv_table(path, header_row)
    return _column_values(path, rows, width, _pick_column(header, width, column, path.name))


def _read_npy(path: Path, column: str | int | None) -> np.ndarray:
    array = np.load(path, allow_pickle=False)
    if array.ndim == 1:
        if column not in (None, 0, "0"):
            raise ValueError(f"column={column!r}: {path.name} is 1-D, leave column unset")
        return array.astype(np.float64)
    if array.ndim != 2:
        raise ValueError(f"{path.name} has shape {array.shape}; expected (T,) or (T, k)")
    index = _pick_column(None, array.shape[1], column, path.name)
    return array[:, index].astype(np.float64)


def read_series(
    path: str | Path, column: str | int | None = None, header_row: bool | None = None
) -> np.ndarray:
    """Read one forecasting series.

    Parameters
    ----------
    path : a ``.csv`` or ``.npy`` file.
    column : header name or 0-based index of the series' column; the last
        column when None.
    header_row : whether a CSV's first row is a header; detected when None
        (a header has a field that is not a number).

    Returns
    -------
    (T,) float64 series, missing values filled by linear interpolation.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path.name}: forecasting series must be one of {', '.join(SUFFIXES)}")
    values = (
        _read_csv(path, column, header_row)
        if path.suffix.lower() == ".csv"
        else _read_npy(path, column)
    )
    if np.isinf(values).any():
        raise ValueError(f"{path.name} holds infinite values")
    missing = int(np.isnan(values).sum())
    if missing:
        log.info("%s: filled %d missing values by linear interpolation", path.name, missing)
    return fill_gaps(values)


def read_columns(path: str | Path, header_row: bool | None = None) -> list[tuple[str, np.ndarray]]:
    """Every numeric column of a CSV, one row per time step, gaps filled.

    A column is numeric when every field of it is a number or a missing token
    (a date column is not, and is left out). Columns named by the header, or
    by 0-based index without one. Raises ValueError for an empty file, a row of
    another width, no numeric column, an infinite value or a column with no value.

    Returns
    -------
    (name, (T,) float64 series) per numeric column, in column order.
    """
    path = Path(path)
    header, rows, width = _csv_table(path, header_row)
    values = np.empty((len(rows), width))
    numeric = np.ones(width, bool)
    for i, (number, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path.name} line {number}: {len(row)} fields, expected {width}")
        for j, field in enumerate(row):
            value = _to_float(field) if numeric[j] else None
            numeric[j] &= value is not None
            values[i, j] = np.nan if value is None else value
    if not numeric.any():
        raise ValueError(f"{path.name} has no column of numbers")
    if np.isinf(values[:, numeric]).any():
        raise ValueError(f"{path.name} holds infinite values")
    names = header if header is not None else [str(j) for j in range(width)]
    out = []
    for j in np.flatnonzero(numeric):
        try:
            out.append((names[j], fill_gaps(values[:, j])))
        except ValueError:
            raise ValueError(f"{path.name}: column {names[j]!r} has no value") from None
    return out


def read_labelled(
    path: str | Path, column: str | int | None, label_column: str | int
) -> tuple[np.ndarray, np.ndarray]:
    """Read a series and its point labels (1 = anomalous) from two columns of a CSV.

    Parameters
    ----------
    path : a ``.csv`` file, header optional (as ``read_series``).
    column : the series' column (name or 0-based index); when None, the last
        column other than ``label_column``.
    label_column : the labels' column: every value 0 or 1, none missing.

    Returns
    -------
    (values (T,) float64 with gaps filled, labels (T,) bool).
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path.name}: a labelled series must be a .csv file")
    header, rows, width = _csv_table(path, None)
    label_index = _pick_column(header, width, label_column, path.name)
    if column is None:
        others = [i for i in range(width) if i != label_index]
        if not others:
            raise ValueError(f"{path.name} has only the label column; add the series' column")
        index = others[-1]
    else:
        index = _pick_column(header, width, column, path.name)
    if index == label_index:
        raise ValueError(f"column={column!r} is the label column; name the series' column")
    labels = _column_values(path, rows, width, label_index)
    bad = np.flatnonzero(~np.isin(labels, (0.0, 1.0)))
    if bad.size:
        number = rows[int(bad[0])][0]
        raise ValueError(
            f"{path.name} line {number}: label {rows[int(bad[0])][1][label_index]!r} in column "
            f"{label_index}; labels must be 0 (normal) or 1 (anomalous), none missing"
        )
    values = _column_values(path, rows, width, index)
    if np.isinf(values).any():
        raise ValueError(f"{path.name} holds infinite values")
    return fill_gaps(values), labels.astype(bool)
