"""The OATS benchmark driver: its grid, paired statistics and table on hand-made records."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_oats  # noqa: E402
from bench_transfer import settings_hash  # noqa: E402


def record(arm: str, seed: int, accuracy: float, val_mts: float, wall: float) -> dict:
    metrics = {name: accuracy for name in bench_oats.CLASSIFICATION}
    return {
        "arm": arm,
        "seed": seed,
        "metrics": metrics,
        "mean_accuracy": accuracy,
        "val_mts": val_mts,
        "train_wall_s": wall,
    }


def test_paired_differences_and_their_t_interval_on_a_hand_made_example():
    arm = [0.80, 0.82, 0.79, 0.85, 0.81]
    base = [0.78, 0.80, 0.80, 0.81, 0.78]
    val = [0.90, 0.91, 0.92, 0.90, 0.91]
    gap = [0.010, 0.012, 0.011, 0.009, 0.010]  # the baseline's val_mts is higher by these
    records = [record("oats-replace", s, a, val[s], 100.0) for s, a in enumerate(arm)]
    records += [record("baseline", s, b, val[s] + gap[s], 50.0) for s, b in enumerate(base)]
    records.append(record("oats-replace", 7, 0.99, 0.9, 1.0))  # no baseline of seed 7: unpaired
    diffs = bench_oats.paired_differences(records, "mean_accuracy", "oats-replace", "baseline")
    np.testing.assert_allclose(diffs, [0.02, 0.02, -0.01, 0.04, 0.03], atol=1e-12)
    mean, half = bench_oats.t_interval(diffs)
    # sd = sqrt((0 + 0 + 0.0009 + 0.0004 + 0.0001) / 4); t_{0.975, 4} = 2.776445
    assert mean == pytest.approx(0.02)
    assert half == pytest.approx(2.776445 * np.sqrt(0.00035) / np.sqrt(5), rel=1e-5)
    assert np.isnan(bench_oats.t_interval([0.5])[1])
    text = bench_oats.table(records)
    row = next(x for x in text.splitlines() if x.startswith("| oats-replace − baseline"))
    assert row.startswith("| oats-replace − baseline (paired) | 5 | +0.0200 ± 0.0232 |")
    half_mts = 2.776445 * np.std(gap, ddof=1) / np.sqrt(5)
    assert f"| **-0.0104 ± {half_mts:.4f}** | +50 ± 0 |" in row  # an interval without 0: bold
    assert "| baseline | 5 | 0.7940 ± 0.0167 |" in text  # mean and t-interval of the arm
    assert text.splitlines()[3].endswith("| 1.7 |")  # cost: mean wall (501 / 6) over 50 s


def test_the_grid_pairs_every_arm_with_every_seed_and_smoke_cells_are_other_cells():
    cells = bench_oats.oats_cells()
    assert len(cells) == len(bench_oats.ARMS) * len(bench_oats.SEEDS) == 30
    assert len({settings_hash(c) for c in cells}) == 30
    for seed in bench_oats.SEEDS:  # same data, steps and pretraining settings within a seed
        same = [c for c in cells if c["seeds"] == [seed]]
        assert len({(c["store"], c["steps"], str(c["settings"])) for c in same}) == 1
    baseline = [c for c in cells if c["oats"] is None]
    assert len(baseline) == len(bench_oats.SEEDS)
    arms = {c["oats"]["arm"]: c["oats"] for c in cells if c["oats"]}
    assert arms["oats-replace"]["ref"] == list(bench_oats.CLASSIFICATION)
    assert "generator" not in arms["augment"] and "generator" in arms["unguided"]
    smoke = bench_oats.oats_cells(smoke=True)
    assert not {settings_hash(c) for c in smoke} & {settings_hash(c) for c in cells}


def test_auroc_counts_ties_one_half_and_matched_noise_has_the_rows_moments():
    assert bench_oats.auroc([3.0, 2.0], [1.0, 0.0]) == 1.0
    assert bench_oats.auroc([-np.inf, 1.0], [-np.inf, 2.0]) == pytest.approx((0.5 + 1) / 4)
    windows = np.random.default_rng(0).normal(5.0, 3.0, size=(4, 64)).cumsum(1)
    noise = bench_oats.matched_noise(windows, seed=1)
    np.testing.assert_allclose(noise.mean(1), windows.mean(1), rtol=1e-5)
    np.testing.assert_allclose(noise.std(1), windows.std(1), rtol=1e-5)
