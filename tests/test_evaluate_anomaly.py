"""The anomaly protocol: point-adjusted F1 by hand, scores against loops, threshold, reader.

The CLI run of encoders on the shipped synthetic series is in tests/test_evaluate_cli.py.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from s2gen.evaluate import anomaly
from s2gen.evaluate.anomaly import AnomalyConfig, AnomalySeries, evaluate_scores

DATA = Path(__file__).parent / "data"
BUMPS = DATA / "evaluate" / "bumps.csv"


def test_point_adjusted_f1_of_a_hand_computed_case():
    labels = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1, 1], bool)
    flags = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0, 1], bool)
    assert anomaly.segments(labels).tolist() == [[1, 4], [6, 7], [8, 10]]
    adjusted = anomaly.point_adjust(flags, labels)
    assert np.flatnonzero(adjusted).tolist() == [0, 1, 2, 3, 5, 8, 9]  # segments 1 and 3 whole
    result = anomaly.point_adjusted_f1(flags, labels)
    # TP 5 (1, 2, 3, 8, 9), FP 2 (0, 5), FN 1 (6): P = 5/7, R = 5/6, F1 = 10/13
    assert result["precision"] == pytest.approx(5 / 7)
    assert result["recall"] == pytest.approx(5 / 6)
    assert result["f1"] == pytest.approx(10 / 13)
    nothing = anomaly.point_adjusted_f1(np.zeros(10, bool), labels)
    assert nothing == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    late = np.zeros(10, bool)
    late[3] = True  # the last point of a segment counts: no delay
    assert anomaly.point_adjusted_f1(late, labels)["recall"] == pytest.approx(3 / 6)


def test_relative_to_recent_and_zscore_match_loops():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.5, 2.0, 60)
    relative = anomaly.relative_to_recent(scores, span=21)
    assert np.isnan(relative[:21]).all()
    for t in range(21, 60):
        mean = scores[t - 21 : t].mean()
        assert relative[t] == pytest.approx((scores[t] - mean) / mean)
    values = rng.normal(size=50)
    z = anomaly.zscore_scores(values, 8)
    assert np.isnan(z[:8]).all()
    for t in range(8, 50):
        before = values[t - 8 : t]
        assert z[t] == pytest.approx(abs(values[t] - before.mean()) / before.std())


class LastPoints:
    """Stand-in encoder: the 'last token' is the last 4 points of the window itself."""

    def last_token(self, windows):
        return np.array(windows[:, -4:], np.float32)


def test_masking_score_hides_the_scored_point_and_compares_the_last_token():
    values = np.random.default_rng(1).normal(size=200)
    cfg = AnomalyConfig(context=10)
    scores = anomaly.masking_scores(LastPoints(), values, cfg)
    # the point t replaced by t - 1 changes the last token by |x_t - x_{t-1}| exactly
    raw = np.full(200, np.nan)
    raw[9:] = np.abs(np.diff(values.astype(np.float32)))[8:]
    np.testing.assert_allclose(scores, anomaly.relative_to_recent(raw), rtol=1e-5)
    assert np.isnan(scores[: 9 + anomaly.SMOOTH]).all() and np.isfinite(scores[30:]).all()
    with pytest.raises(ValueError, match="token states"):
        anomaly.masking_scores(lambda series: series, values, cfg)


def test_threshold_comes_from_the_first_part_only():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=400)
    scores[300] = 9.0  # one clear outlier in the tested part
    labels = np.zeros(400, bool)
    labels[300:303] = True
    result = evaluate_scores(scores, labels, split=200, k=4.0)
    head = scores[:200]
    assert result["threshold"] == pytest.approx(head.mean() + 4 * head.std())
    assert result["flagged"] == int(np.sum(scores[200:] > result["threshold"])) >= 1
    assert result["segments"] == result["detected"] == 1 and result["recall"] == 1.0
    labels[:200] = rng.uniform(size=200) < 0.5  # labels of the first part are never used
    assert evaluate_scores(scores, labels, split=200, k=4.0) == result
    with pytest.raises(ValueError, match="set the threshold"):
        evaluate_scores(np.full(400, np.nan), labels, split=200, k=4.0)


def test_shipped_series_is_what_its_script_writes():
    spec = importlib.util.spec_from_file_location("make", DATA / "make_anomaly_series.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    values, labels = script.make_series()
    series = anomaly.load_anomaly(BUMPS, None, "label")
    np.testing.assert_allclose(series.values, values, atol=5e-6)
    assert np.array_equal(series.labels, labels.astype(bool))
    assert len(anomaly.segments(series.labels[500:])) == 6 and series.labels[:500].sum() == 1


def test_labelled_csv_reader_picks_columns_and_rejects_bad_labels(tmp_path):
    series = anomaly.load_anomaly(BUMPS, None, "label")  # value: the last but the label
    same = anomaly.load_anomaly(BUMPS, "1", "2")
    assert np.array_equal(series.values, same.values) and series.name == "bumps"
    assert anomaly.load_anomaly(BUMPS, "step", "label").values[5] == 5.0
    with pytest.raises(ValueError, match="is the label column"):
        anomaly.load_anomaly(BUMPS, "label", "label")
    with pytest.raises(ValueError, match="choose one of: step, value, label"):
        anomaly.load_anomaly(BUMPS, None, "labels")
    bad = tmp_path / "bad.csv"
    bad.write_text("value,label\n1.0,0\n2.0,2\n")
    with pytest.raises(ValueError, match="bad.csv line 3: label '2'"):
        anomaly.load_anomaly(bad, None, "label")
    bad.write_text("value,label\n1.0,0\n2.0,\n")
    with pytest.raises(ValueError, match="line 3"):
        anomaly.load_anomaly(bad, None, "label")
    with pytest.raises(ValueError, match="neither a known name nor an existing path"):
        anomaly.load_anomaly(tmp_path / "none.csv", None, "label")


def test_probe_refuses_what_it_cannot_score():
    values = np.sin(np.arange(300) / 5.0)
    labels = np.zeros(300, bool)
    labels[50] = True  # only in the first part
    quiet = AnomalySeries("quiet", values, labels, "test")
    with pytest.raises(ValueError, match="no labelled anomaly"):
        anomaly.anomaly_baselines(quiet, AnomalyConfig())
    labels[250] = True
    with pytest.raises(ValueError, match="shorten --context"):
        anomaly.anomaly_baselines(quiet, AnomalyConfig(context=200))
    with pytest.raises(ValueError, match="score='spectral'"):
        AnomalyConfig(score="spectral")


def test_baselines_on_the_synthetic_series():
    series = anomaly.load_anomaly(BUMPS, None, "label")
    results = anomaly.anomaly_baselines(series, AnomalyConfig())
    assert set(results) == set(anomaly.ANOMALY_BASELINES)
    zscore, random = results["zscore"], results["random"]
    assert zscore["n_test"] == 500 and zscore["segments"] == 6
    assert zscore["detected"] >= 3 and zscore["precision"] == 1.0  # the spikes and a shift
    assert random["flagged"] == 0 and random["f1"] == 0.0  # N(0, 1) rarely passes mean + 4 std
    assert abs(random["auc_roc"] - 0.5) < 0.1
