"""Probes, baselines, suite and report on tiny synthetic data with numpy stand-in embedders.

The stand-ins are legitimate here: the protocols take any ``embed`` callable,
and these tests check the protocols, not an encoder.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from s2gen.evaluate import baselines, protocols
from s2gen.evaluate.protocols import ClassificationConfig, ForecastConfig
from s2gen.evaluate.report import markdown_table, summarise, write_results
from s2gen.evaluate.suite import ModelSpec, SuiteConfig, run_suite

DATA = Path(__file__).parent / "data" / "evaluate"
FAST = ClassificationConfig(cv_folds=3, c_grid=(0.01, 1.0, 100.0))


def _as_rows(series, length=32):
    """(n, L) array or list of 1-D arrays -> (n, length) by interpolation."""
    rows = series if isinstance(series, list) else list(series)
    grid = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(grid, np.linspace(0.0, 1.0, r.size), r) for r in rows])


def spectrum_embed(series):
    """Instance-normalised magnitude spectrum: a fixed, informative embedding."""
    x = _as_rows(series)
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)
    return np.abs(np.fft.rfft(x, axis=1))  # (n, 17)


def window_embed(series):
    """The instance-normalised window itself (resampled to 32 points)."""
    x = _as_rows(series)
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)


def noise_embed(seed):
    rng = np.random.default_rng(seed)
    return lambda series: rng.standard_normal((len(series), 8))


def two_frequency_cases(n, seed, length=40):
    """Sines of frequency 2 (class "slow") or 5 (class "fast"), random phase and scale."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    labels = np.array(["slow", "fast"] * (n // 2))
    cases = [
        (
            rng.uniform(0.5, 3)
            * np.sin(2 * np.pi * (2 if y == "slow" else 5) * t + rng.uniform(0, 6))
            + rng.uniform(-5, 5)
        )[None, :]
        + 0.05 * rng.standard_normal((1, length))
        for y in labels
    ]
    return cases, labels


def test_embed_cases_concatenates_channels_in_order_and_fills_gaps():
    calls = []

    def embed(series):
        calls.append(series)
        return np.stack([[np.mean(s), s[0]] for s in series])

    cases = [np.array([[1.0, np.nan, 3.0], [10.0, 10.0, 10.0]]), np.array([[0.0, 0, 0], [5, 6, 7]])]
    z = protocols.embed_cases(embed, cases)
    assert z.shape == (2, 4)
    assert z.tolist() == [[2.0, 1.0, 10.0, 10.0], [0.0, 0.0, 6.0, 5.0]]
    assert isinstance(calls[0], np.ndarray) and calls[0].shape == (4, 3)
    protocols.embed_cases(embed, [np.ones((1, 3)), np.ones((1, 5))])
    assert isinstance(calls[1], list) and [r.size for r in calls[1]] == [3, 5]


def test_embed_cases_rejects_wrong_output_shape():
    with pytest.raises(ValueError, match="expected \\(2, dim\\)"):
        protocols.embed_cases(lambda s: np.zeros((1, 3)), [np.ones((1, 4))] * 2)


def test_classification_probe_separates_informative_embeddings_only():
    train, y_train = two_frequency_cases(20, seed=1)
    test, y_test = two_frequency_cases(40, seed=2)
    cfg = FAST
    good = protocols.classification_probe(spectrum_embed, train, y_train, test, y_test, cfg)
    assert good["accuracy"] == 1.0
    assert good["dim"] == 17 and good["cv_folds"] == 3 and good["C"] in cfg.c_grid
    bad = protocols.classification_probe(noise_embed(0), train, y_train, test, y_test, cfg)
    assert bad["accuracy"] < 0.8
    svm = protocols.classification_probe(
        spectrum_embed,
        train,
        y_train,
        test,
        y_test,
        ClassificationConfig(classifier="svm", cv_folds=3, c_grid=(1.0, 100.0)),
    )
    assert svm["accuracy"] == 1.0


def test_fit_classifier_adapts_folds_to_the_smallest_class():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3))
    y = np.array(["a", "a", "a", "a", "b", "b", "b"])
    x[y == "b"] += 5
    result = protocols.fit_classifier(x, y, x, y, ClassificationConfig(cv_folds=5))
    assert result["cv_folds"] == 3 and result["accuracy"] == 1.0
    y_single = np.array(["a"] * 6 + ["b"])
    result = protocols.fit_classifier(x, y_single, x, y_single, ClassificationConfig())
    assert result["cv_folds"] == 0 and result["C"] == 1.0
    with pytest.raises(ValueError, match="single class"):
        protocols.fit_classifier(x, np.array(["a"] * 7), x, y, ClassificationConfig())
    with pytest.raises(ValueError, match="NaN or inf"):
        protocols.fit_classifier(np.full((7, 3), np.nan), y, x, y, ClassificationConfig())


def test_configs_name_the_bad_field():
    with pytest.raises(ValueError, match="classifier='knn'"):
        ClassificationConfig(classifier="knn")
    with pytest.raises(ValueError, match="horizon=0"):
        ForecastConfig(horizon=0)
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        ForecastConfig(horizon=2, test_fraction=1.5)
    with pytest.raises(ValueError, match="forecast is None"):
        SuiteConfig(task="forecasting", datasets=("x",))
    with pytest.raises(ValueError, match="seeds"):
        SuiteConfig(task="classification", datasets=("x",), seeds=(0, 0))
    with pytest.raises(ValueError, match="forecasting task only"):
        SuiteConfig(task="classification", datasets=("x",), period=12)
    with pytest.raises(ValueError, match="period=1"):
        SuiteConfig("forecasting", ("x",), forecast=ForecastConfig(horizon=2), period=1)


def test_windows_split_by_origin_without_leakage():
    values = np.arange(100.0)
    cfg = ForecastConfig(horizon=5, context=10, test_fraction=0.2)
    w = protocols.make_windows(values, cfg)
    z_mean, z_std = values[:80].mean(), values[:80].std()
    z = (values - z_mean) / z_std
    assert w.train_context.shape == (66, 10) and w.train_target.shape == (66, 5)
    assert w.test_context.shape == (16, 10) and w.test_target.shape == (16, 5)
    assert w.train_target.max() == pytest.approx(z[79])  # train targets stay in the train part
    assert w.test_target[0, 0] == pytest.approx(z[80])  # first test origin is the split
    assert w.test_target[-1, -1] == pytest.approx(z[99])
    assert np.allclose(w.test_context[0], z[70:80])
    assert w.test_origins.tolist() == list(range(80, 96))
    with pytest.raises(ValueError, match="shorten context or horizon"):
        protocols.make_windows(values[:25], cfg)


def test_seasonal_naive_repeats_the_last_season():
    series = np.arange(20.0)
    prediction = baselines.seasonal_naive_forecast(series, np.array([10, 12]), 7, 3)
    # origin 10, period 3: values 7 8 9 7 8 9 7
    assert prediction.tolist() == [[7, 8, 9, 7, 8, 9, 7], [9, 10, 11, 9, 10, 11, 9]]
    with pytest.raises(ValueError, match="period=30"):
        baselines.seasonal_naive_forecast(series, np.array([10]), 2, 30)
    assert baselines.naive_forecast(np.array([[1.0, 2.0]]), 3).tolist() == [[2, 2, 2]]


def test_forecast_baselines_are_exact_on_a_periodic_series():
    t = np.arange(240)
    values = 3 + np.sin(2 * np.pi * t / 12)
    cfg = ForecastConfig(horizon=6, context=24)
    results = baselines.forecast_baselines(values, 12, cfg)
    assert set(results) == {"naive", "seasonal-naive", "ridge-raw"}
    assert results["seasonal-naive"]["mse"] < 1e-20
    assert results["naive"]["mse"] > 0.1
    assert results["ridge-raw"]["mse"] < 1e-4
    assert "seasonal-naive" not in baselines.forecast_baselines(values, None, cfg)


def test_forecasting_probe_learns_from_informative_embeddings_only():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    values = np.sin(2 * np.pi * t / 16) + 0.05 * rng.standard_normal(400)
    cfg = ForecastConfig(horizon=8, context=32)
    good = protocols.forecasting_probe(window_embed, values, cfg)
    naive = baselines.forecast_baselines(values, None, cfg)["naive"]
    assert good["mse"] < 0.05 < naive["mse"]
    assert good["n_test"] == 400 - 320 - 8 + 1 and good["dim"] == 32
    assert good["alpha"] in cfg.alpha_grid
    bad = protocols.forecasting_probe(noise_embed(1), values, cfg)
    assert bad["mse"] > 10 * good["mse"]


class LastSteps:
    """Stand-in encoder for the ts2vec protocol: the 'last token' is the window's last 16
    points, instance-normalised (what a good last-timestamp representation knows)."""

    def __call__(self, series):
        raise AssertionError("the ts2vec protocol must use the last token, not the embedding")

    def last_token(self, windows):
        x = np.asarray(windows)[:, -16:]
        return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)


class NoiseToken(LastSteps):
    def last_token(self, windows):
        return np.random.default_rng(len(windows)).standard_normal((len(windows), 16))


def test_ts2vec_protocol_forecasts_from_the_last_token_with_alpha_from_validation():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    values = np.sin(2 * np.pi * t / 16) + 0.05 * rng.standard_normal(400)
    cfg = ForecastConfig(horizon=8, context=32, protocol="ts2vec")
    good = protocols.forecasting_probe(LastSteps(), values, cfg)
    assert good["protocol"] == "ts2vec" and good["dim"] == 16
    assert good["alpha"] in protocols.TS2VEC_ALPHAS
    n_train = 320 - 8 - 32 + 1  # origins 32 .. 312
    assert good["n_train"] == n_train and good["n_val"] == round(0.25 * n_train)
    naive = baselines.forecast_baselines(values, None, cfg)["naive"]
    assert good["mse"] < 0.05 < naive["mse"]
    bad = protocols.forecasting_probe(NoiseToken(), values, cfg)
    assert bad["mse"] > 10 * good["mse"]
    with pytest.raises(ValueError, match="needs an encoder's token states"):
        protocols.forecasting_probe(window_embed, values, cfg)
    with pytest.raises(ValueError, match="protocol='last'"):
        ForecastConfig(horizon=8, protocol="last")


def test_nn1_is_invariant_to_offset_and_scale_and_handles_unequal_lengths():
    train, y_train = two_frequency_cases(10, seed=3)
    test, y_test = two_frequency_cases(20, seed=4)
    base = baselines.nn1_euclidean(train, y_train, test, y_test)["accuracy"]
    shifted = [100 + 7 * case for case in test]
    assert baselines.nn1_euclidean(train, y_train, shifted, y_test)["accuracy"] == base
    assert base > 0.6
    stretched = [np.repeat(case, 2, axis=1) for case in test]  # length 80 vs train 40
    assert baselines.nn1_euclidean(train, y_train, stretched, y_test)["accuracy"] > 0.6
    raw = baselines.logreg_raw(train, y_train, test, y_test, FAST)
    assert 0.0 <= raw["accuracy"] <= 1.0 and raw["C"] > 0


def test_suite_runs_models_by_seed_and_baselines_once():
    made = []

    def make_noise(seed):
        made.append(seed)
        return noise_embed(seed)

    models = [
        ModelSpec("spectrum", lambda seed: spectrum_embed, seeded=False),
        ModelSpec("noise", make_noise, seeded=True),
    ]
    datasets = (str(DATA / "Ramps_TRAIN.ts"), str(DATA / "Wobble_TEST.ts"))
    cfg = SuiteConfig("classification", datasets, seeds=(0, 1), classification=FAST)
    records = run_suite(models, cfg)
    assert made == [0, 1]
    keys = [(r["model"], r["dataset"], r["seed"]) for r in records]
    assert len(keys) == len(set(keys)) == 2 * 4 + 2 * 1 + 2 * 2  # 4 baselines per dataset
    assert ("1nn-euclidean", "Ramps", None) in keys and ("noise", "Wobble", 1) in keys
    assert ("catch22-rf", "Wobble", None) in keys and ("minirocket", "Ramps", None) in keys
    assert [k[0] for k in keys[:6]] == [*baselines.CLASSIFICATION_BASELINES, "spectrum", "noise"]
    spectrum = {r["dataset"]: r for r in records if r["model"] == "spectrum"}
    assert spectrum["Wobble"]["info"]["dim"] == 2 * 17  # two channels, concatenated
    assert all(set(r["metrics"]) == {"accuracy"} for r in records)
    with pytest.raises(ValueError, match="distinct"):
        run_suite([models[0], models[0]], cfg)


def test_suite_keeps_going_past_a_failing_dataset_only_when_asked():
    def picky(series):  # fails on Wobble, whose series are shorter than 10 points
        if min(len(row) for row in series) < 10:
            raise ValueError("too short for this model")
        return spectrum_embed(series)

    models = [ModelSpec("picky", lambda seed: picky, seeded=False)]
    datasets = (str(DATA / "Wobble_TRAIN.ts"), str(DATA / "NoSuch_TRAIN.ts"))
    datasets += (str(DATA / "Ramps_TRAIN.ts"),)
    cfg = SuiteConfig("classification", datasets, classification=FAST, baselines=False)
    skipped = []
    records = run_suite(models, cfg, skipped)
    assert [(r["model"], r["dataset"]) for r in records] == [("picky", "Ramps")]
    assert [entry["dataset"] for entry in skipped] == ["Wobble", datasets[1]]
    assert skipped[0]["error"] == "ValueError: too short for this model"
    assert "NoSuch_TRAIN.ts" in skipped[1]["error"]
    with pytest.raises(ValueError, match="NoSuch"):  # without a list: stop at once
        run_suite(models, cfg)
    with pytest.raises(ValueError, match="dtw=True"):
        SuiteConfig("forecasting", ("x",), forecast=ForecastConfig(horizon=2), dtw=True)


def test_rf_head_needs_no_search_and_is_seeded():
    train, y_train = two_frequency_cases(20, seed=1)
    test, y_test = two_frequency_cases(40, seed=2)
    cfg = ClassificationConfig(classifier="rf")
    result = protocols.classification_probe(spectrum_embed, train, y_train, test, y_test, cfg)
    assert result["accuracy"] == 1.0 and result["n_estimators"] == 200 and result["cv_folds"] == 0
    again = protocols.classification_probe(noise_embed(0), train, y_train, test, y_test, cfg)
    assert again == protocols.classification_probe(
        noise_embed(0), train, y_train, test, y_test, cfg
    )
    with pytest.raises(ValueError, match="rf_trees=0"):
        ClassificationConfig(classifier="rf", rf_trees=0)


def test_suite_forecasting_on_a_csv_fixture():
    cfg = SuiteConfig(
        "forecasting",
        (str(DATA / "monthly.csv"),),
        seeds=(0,),
        forecast=ForecastConfig(horizon=6, context=24),
    )
    records = run_suite([ModelSpec("window", lambda seed: window_embed, seeded=False)], cfg)
    models = [r["model"] for r in records]
    assert models == ["naive", "ridge-raw", "window"]  # no period for a path: no seasonal naive
    assert records[-1]["info"]["horizon"] == 6
    assert set(records[-1]["metrics"]) == {"mse", "mae"}


def _record(task, dataset, model, seed, metrics, **info):
    return dict(task=task, dataset=dataset, model=model, seed=seed, metrics=metrics, info=info)


def _records():
    return [
        _record("classification", "A", "rand", 0, {"accuracy": 0.8}),
        _record("classification", "A", "rand", 1, {"accuracy": 0.9}),
        _record("classification", "A", "ckpt", None, {"accuracy": 0.95}),
        _record("forecasting", "S", "ckpt", None, {"mse": 0.5, "mae": 0.4}, horizon=3),
        _record("forecasting", "S", "naive", None, {"mse": 0.7, "mae": 0.3}, horizon=3),
    ]


def test_summary_and_table_mark_the_best_in_the_right_direction():
    table = summarise(_records())
    mean, std, n = table[("classification", "accuracy")]["A"]["rand"]
    assert (mean, n) == (pytest.approx(0.85), 2) and std == pytest.approx(
        np.std([0.8, 0.9], ddof=1)
    )
    text = markdown_table(_records())
    assert "| A | 0.8500 ± 0.0707 | **0.9500** |" in text
    assert "| S H=3 | **0.5000** | 0.7000 |" in text  # mse: lower is better
    assert "| S H=3 | 0.4000 | **0.3000** |" in text  # mae


def test_write_results_writes_json_table_and_png(tmp_path):
    table = write_results(_records(), tmp_path / "out", {"task": "both"})
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(document["records"]) == 5 and document["config"] == {"task": "both"}
    assert (tmp_path / "out" / "results.md").read_text() == table
    png = (tmp_path / "out" / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    with pytest.raises(ValueError, match="records is empty"):
        write_results([], tmp_path / "none")
