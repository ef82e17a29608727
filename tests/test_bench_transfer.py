"""The transfer driver's bookkeeping: seed summaries, records lacking a task, table columns."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_transfer as bt  # noqa: E402


def test_summarise_gives_means_and_population_std_over_seeds():
    per_seed = [{"GunPoint": 0.8, "airline": 1.0}, {"GunPoint": 0.9, "airline": 3.0}]
    summary = bt.summarise(per_seed)
    assert summary["metrics"] == pytest.approx({"GunPoint": 0.85, "airline": 2.0})
    assert summary["spread"] == pytest.approx({"GunPoint": 0.05, "airline": 1.0})
    assert bt.summarise(per_seed[:1])["spread"] == {}  # one seed: no spread


def test_missing_tasks_reads_encoder_and_baseline_records():
    window_only = {name: 0.5 for name in bt.CLASSIFICATION + bt.FORECASTING}
    assert bt.missing_tasks({"metrics": window_only}) == ("forecasting-ts2vec",)
    both = {**window_only, **{f + bt.TS2VEC: 0.4 for f in bt.FORECASTING}}
    assert bt.missing_tasks({"metrics": both}) == ()
    baselines = {f"ridge-raw|{f}": 0.3 for f in bt.FORECASTING}
    baselines |= {f"minirocket|{c}": 0.9 for c in bt.CLASSIFICATION}
    assert bt.missing_tasks({"metrics": baselines}) == ("forecasting-ts2vec",)


def test_the_table_shows_ts2vec_columns_only_once_a_cell_has_them():
    spec = bt.GRIDS["generators"][0]
    metrics = {name: 0.5 for name in bt.CLASSIFICATION + bt.FORECASTING}
    record = {"hash": bt.settings_hash(spec), "metrics": metrics, "mean_accuracy": 0.5}
    header = bt.table([record], "generators").splitlines()[0]
    assert "airline" in header and bt.TS2VEC not in header
    record["metrics"] |= {f + bt.TS2VEC: 0.25 for f in bt.FORECASTING}
    lines = bt.table([record], "generators").splitlines()
    assert "airline@ts2vec" in lines[0]
    assert lines[2].split(" | ")[-2] == "0.250"  # lynx@ts2vec, before the empty train-time cell


def test_ts2vec_forecasting_is_its_own_suite_with_its_own_keys():
    configs = list(bt.suite_configs((0,), baselines=False))
    assert [(suffix, metric, cfg.task) for suffix, metric, cfg in configs] == [
        ("", "accuracy", "classification"),
        ("", "mse", "forecasting"),
        (bt.TS2VEC, "mse", "forecasting"),
    ]
    assert [cfg.forecast.protocol for _, _, cfg in configs[1:]] == ["window", "ts2vec"]
