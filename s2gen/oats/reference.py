"""The OATS reference set from ``--oats-ref``: stores, real series files and dataset names.

OATS scores training windows by how well their gradient aligns with the
gradient on a reference set: the target domain. Each ``--oats-ref`` source
gives windows of the pretraining window's length:

- an s2gen store: centred windows of its output channels, as the default
  reference split gives them (pretraining's own held-out view); a store whose
  series are shorter than the window is refused;
- real series, brought to the window as evaluation brings them
  (``s2gen.pretrain.scaling.resize_linear``: linear interpolation onto
  ``window`` evenly spaced points, first and last points kept; longer series
  are compressed the same way, not cut): every channel is one series, gaps
  filled by linear interpolation in time. Real series are
    * the name of a shipped classification set (``GunPoint``, ...): its TRAIN
      file only (``s2gen.evaluate.datasets.classification_file``);
    * a ``.ts``/``.tsv``/``.txt`` file (a ``_TEST`` file is refused) or a
      folder of UCR/UEA sets (their ``NAME_TRAIN`` files only);
    * a ``.npy`` ((n, L) or (n, 1, L)) or ``.csv`` (one series per line) file.

A test split is never opened: the reference set steers pretraining, and the
test splits are kept for the final evaluation. Several sources take turns,
one series each, until ``size`` windows, so every source is represented.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

CLASSIFICATION_FILES = (".ts", ".tsv", ".txt")


def _test_file(path: Path) -> bool:
    return path.suffix.lower() in CLASSIFICATION_FILES and path.stem.upper().endswith("_TEST")


def real_series_files(source: str) -> list[Path]:
    """The TRAIN files of real series named by ``source``; never a test split.

    A dataset name resolves to its shipped TRAIN file, a folder to its sets'
    ``NAME_TRAIN`` files; an existing file is itself (a ``_TEST`` file is refused).
    """
    from s2gen.evaluate.datasets import CLASSIFICATION, classification_file

    path = Path(source)
    if not path.exists():
        if source.lower() in {name.lower() for name in CLASSIFICATION}:
            return [classification_file(source, "TRAIN")]
        raise ValueError(
            f"--oats-ref {source} is neither an existing path nor a shipped classification set "
            f"({', '.join(sorted(CLASSIFICATION))}); give a store, a series file or a set name"
        )
    if path.is_dir():
        from s2gen.evaluate.archive import find_sets

        return list(find_sets(path).sets.values())
    if _test_file(path):
        raise ValueError(
            f"--oats-ref {source} is a test split, which must not steer pretraining; give its "
            "_TRAIN file"
        )
    if path.suffix.lower() not in CLASSIFICATION_FILES + (".npy", ".csv"):
        raise ValueError(
            f"--oats-ref {source}: give an s2gen store, a set name, a folder of UCR/UEA sets, or "
            f"a {', '.join(CLASSIFICATION_FILES + ('.npy', '.csv'))} file"
        )
    return [path]


def read_real_series(file: Path) -> list[np.ndarray]:
    """Univariate series ((L,) float64, gaps filled) of one file: every channel of every case."""
    from s2gen.evaluate.preprocess import fill_gaps

    if file.suffix.lower() in CLASSIFICATION_FILES:
        from s2gen.evaluate.ts_format import read_cases

        channels = [c for case in read_cases(file).series for c in case]
    else:
        from s2gen.oats.data import load_series

        channels = list(load_series(str(file)).astype(np.float64))
    out = [fill_gaps(c) for c in channels if not np.isnan(c).all()]
    if any(not np.isfinite(c).all() for c in out):
        raise ValueError(f"--oats-ref {file} holds infinite values; drop or repair those series")
    return out


def resize_rows(series: list[np.ndarray], window: int) -> np.ndarray:
    """Series of any lengths, each linearly resized onto ``window`` points: (m, window) float32.

    Point i of a series of L points is its value at position i (L - 1) / (window - 1)
    (``s2gen.pretrain.scaling.resize_linear``; a one-point series is constant).
    """
    out = np.empty((len(series), window), np.float32)
    for i, values in enumerate(series):
        position = np.arange(window) * ((len(values) - 1) / max(window - 1, 1))
        out[i] = np.interp(position, np.arange(len(values)), values)
    return out


def store_windows(path: str, window: int) -> np.ndarray:
    """Centred windows (m, window) of the output channels of a store's rows."""
    from s2gen.oats.data import load_series

    series = load_series(path)
    if series.shape[1] < window:
        raise ValueError(
            f"--oats-ref {path} holds series of length {series.shape[1]}, shorter than the "
            f"window {window}; give a store of longer series or a smaller window"
        )
    start = (series.shape[1] - window) // 2
    return np.ascontiguousarray(series[:, start : start + window], np.float32)


def reference_series(sources: Sequence[str], window: int, size: int) -> np.ndarray:
    """Reference windows (m, window) float32, m <= ``size``, from ``--oats-ref`` sources.

    Sources take turns (their first series first) until ``size`` windows;
    see the module notes for what each kind of source gives.
    """
    from s2gen.pretrain.sources import is_store

    parts = []
    for source in sources:
        if is_store(str(source)):
            parts.append(store_windows(str(source), window))
            continue
        series = [s for f in real_series_files(str(source)) for s in read_real_series(f)]
        if not series:
            raise ValueError(f"--oats-ref {source} holds no series")
        parts.append(resize_rows(series, window))
    turns = np.concatenate([np.arange(len(p)) for p in parts])  # (sum m,)
    order = np.argsort(turns, kind="stable")[:size]  # round robin over the sources
    return np.concatenate(parts)[order]
