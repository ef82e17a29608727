"""The transfer driver's bookkeeping: seed summaries, records lacking a task, table columns."""

import json
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


def test_cells_differing_only_in_seeds_share_the_runs_of_their_common_seeds(tmp_path):
    one = bt.cell("one-seed", "ref-1e5")
    three = bt.cell("three-seeds", "ref-1e5", seeds=(0, 1, 2))
    assert bt.run_dir(tmp_path, three, 0) == bt.run_dir(tmp_path, one, 0)
    assert bt.run_dir(tmp_path, one, 0).name == f"{bt.settings_hash(one)}-seed0"  # as recorded
    assert len({bt.run_dir(tmp_path, three, seed) for seed in (0, 1, 2)}) == 3
    other = bt.cell("other-objective", "ref-1e5", objective="mae")
    assert bt.run_dir(tmp_path, other, 0) != bt.run_dir(tmp_path, one, 0)


def test_training_seconds_add_up_every_resumed_part_of_a_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"batch_size": 4}))
    (tmp_path / "run.json").write_text(json.dumps({"world_size": 2}))
    lines = [
        {"step": 10, "loss": 1.0, "samples_per_s": 8.0},  # 10 steps x 8 samples: 10 s
        {"step": 10, "val_loss": 2.0},
        {"step": 20, "loss": 0.9, "samples_per_s": 4.0},  # 20 s (the part before a kill)
        {"step": 30, "loss": 0.8, "samples_per_s": 80.0},  # resumed at 20: 1 s
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert bt.training_seconds(tmp_path) == pytest.approx(31.0)  # a log without train_s
    timed = [{**x, "train_s": 5.0 * x["step"]} for x in lines if "loss" in x]
    (tmp_path / "timed" / "metrics.jsonl").parent.mkdir()
    (tmp_path / "timed" / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in timed))
    assert bt.training_seconds(tmp_path / "timed") == 150.0  # as the run logged it
    spec = bt.cell("retimed", "ref-1e5")
    record = {"pretraining": [{"val_loss": 2.0, "train_wall_s": 1.0}]}
    assert bt.retimed(tmp_path, spec, record) == record  # no run under this work folder
    out = bt.run_dir(tmp_path, spec, 0)
    out.mkdir(parents=True)
    for name in ("config.json", "run.json", "metrics.jsonl"):
        (out / name).write_text((tmp_path / name).read_text())
    assert bt.retimed(tmp_path, spec, record)["pretraining"] == [
        {"val_loss": 2.0, "train_wall_s": pytest.approx(31.0)}
    ]
