"""The classical baselines: DTW kernel against its numpy twin, catch22, MiniRocket, GunPoint."""

import sys
import types

import numpy as np
import pytest

from s2gen.evaluate import baselines
from s2gen.evaluate.datasets import load_classification
from s2gen.evaluate.dtw import dtw_distances, dtw_nearest
from tests import naive


def _panel(rng, n, channels, length):
    return np.cumsum(rng.standard_normal((n, channels, length)), axis=2)  # random walks


@pytest.mark.parametrize("channels, window", [(1, 0), (1, 3), (2, 5), (3, 11)])
def test_dtw_distances_match_the_numpy_twin(channels, window):
    rng = np.random.default_rng(channels * 10 + window)
    a, b = _panel(rng, 4, channels, 12), _panel(rng, 5, channels, 12)
    got = dtw_distances(a, b, window)
    twin = np.array([[naive.dtw_band(x, y, window) for y in b] for x in a])
    np.testing.assert_allclose(got, twin, rtol=1e-12, atol=0)
    if window == 0:  # the band is the diagonal: squared Euclidean distance
        euclid = ((a[:, None] - b[None, :]) ** 2).sum(axis=(2, 3))
        np.testing.assert_allclose(got, euclid, rtol=1e-12)


def test_dtw_aligns_a_shifted_sine_that_euclidean_cannot():
    t = np.arange(100)
    x = np.sin(2 * np.pi * t / 50)[None, None, :]
    shifted = np.sin(2 * np.pi * (t - 4) / 50)[None, None, :]  # 4 points late
    euclid = float(((x - shifted) ** 2).sum())
    within = dtw_distances(x, shifted, 10)[0, 0]  # band 10 >= the shift
    narrow = dtw_distances(x, shifted, 2)[0, 0]  # band 2 < the shift
    assert within < 0.1 * euclid  # only the 4 end points without a partner cost
    assert within < narrow < euclid
    assert dtw_distances(x, shifted, 4)[0, 0] == within  # a band as wide as the shift suffices
    assert dtw_distances(x, x, 10)[0, 0] == 0.0


def test_dtw_nearest_equals_argmin_of_the_full_matrix_first_among_ties():
    rng = np.random.default_rng(7)
    train, test = _panel(rng, 30, 2, 20), _panel(rng, 12, 2, 20)
    train[17] = train[4]  # an exact tie: the first index must win
    test[0] = train[4] + 0.01
    index, cost = dtw_nearest(train, test, 4)
    twin = np.array([[naive.dtw_band(x, y, 4) for y in train] for x in test])
    assert index.tolist() == np.argmin(twin, axis=1).tolist()
    np.testing.assert_allclose(cost, twin.min(axis=1), rtol=1e-12)
    assert index[0] == 4


def test_dtw_wrappers_reject_bad_input():
    ok = np.zeros((2, 1, 5))
    with pytest.raises(ValueError, match="NaN"):
        dtw_distances(np.full((2, 1, 5), np.nan), ok, 1)
    with pytest.raises(ValueError, match="one length"):
        dtw_nearest(ok, np.zeros((2, 1, 6)), 1)
    with pytest.raises(ValueError, match="window=-1"):
        dtw_distances(ok, ok, -1)
    with pytest.raises(ValueError, match=r"\(n, C, L\)"):
        dtw_distances(np.zeros((2, 5)), ok, 1)
    with pytest.raises(ValueError, match="window=1.5"):
        baselines.nn1_dtw([ok[0]], np.array(["a"]), [ok[0]], np.array(["a"]), window=1.5)


def bump_cases(n, seed, length=60):
    """Class "bump": one Gaussian bump; class "step": a plateau; both at a random place."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    labels = np.array(["bump", "step"] * (n // 2))
    cases = []
    for label in labels:
        centre = rng.uniform(0.3, 0.7) * length
        if label == "bump":
            shape = np.exp(-0.5 * ((t - centre) / 3.0) ** 2)
        else:
            shape = (np.abs(t - centre) < 8).astype(float)
        cases.append((shape + 0.05 * rng.standard_normal(length))[None, :])
    return cases, labels


def test_nn1_dtw_classifies_misaligned_shapes_that_euclidean_confuses():
    train, y_train = bump_cases(6, seed=0)
    test, y_test = bump_cases(40, seed=1)
    dtw = baselines.nn1_dtw(train, y_train, test, y_test)
    euclid = baselines.nn1_euclidean(train, y_train, test, y_test)
    assert dtw["window"] == 6  # floor(0.1 * 60)
    assert dtw["accuracy"] >= 0.95 > euclid["accuracy"]


def sine_or_noise(n, seed, channels=1, length=64):
    """Class "sine": a sine of random phase; class "noise": white noise. Easily separable."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, length)
    labels = np.array(["sine", "noise"] * (n // 2))
    cases = [
        np.stack(
            [
                np.sin(t + rng.uniform(0, 6)) if y == "sine" else rng.standard_normal(length)
                for _ in range(channels)
            ]
        )
        for y in labels
    ]
    return cases, labels


@pytest.mark.parametrize("channels", [1, 2])
def test_catch22_and_minirocket_separate_sines_from_noise(channels):
    train, y_train = sine_or_noise(10, seed=channels, channels=channels)
    test, y_test = sine_or_noise(20, seed=10 + channels, channels=channels)
    features, imputed = baselines.catch22_features(train)
    assert features.shape == (10, 22 * channels) and imputed == 0
    catch22 = baselines.catch22_rf(train, y_train, test, y_test)
    assert catch22["accuracy"] == 1.0 and catch22["n_estimators"] == 500
    rocket = baselines.minirocket_ridge(train, y_train, test, y_test)
    assert rocket["accuracy"] == 1.0
    assert np.isclose(rocket["alpha"], baselines.RIDGE_ALPHAS).any()
    assert rocket == baselines.minirocket_ridge(train, y_train, test, y_test)  # seeded


def test_minirocket_takes_series_shorter_than_its_kernels():
    train, y_train = sine_or_noise(10, seed=3, length=6)
    test, y_test = sine_or_noise(6, seed=4, length=5)
    result = baselines.minirocket_ridge(train, y_train, test, y_test)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["n_features"] > 0


def test_catch22_sets_nan_features_to_zero_and_counts_them(monkeypatch):
    fake = types.ModuleType("pycatch22")
    fake.catch22_all = lambda values: {"values": [np.nan, np.inf] + [float(len(values))] * 20}
    monkeypatch.setitem(sys.modules, "pycatch22", fake)
    features, imputed = baselines.catch22_features([np.ones((2, 4)), np.ones((2, 7))])
    assert imputed == 2 * 2 * 2  # two bad features per channel
    assert features[:, [0, 1, 22, 23]].tolist() == [[0.0] * 4] * 2
    assert features[1, 2] == 7.0


def test_catch22_without_pycatch22_gives_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycatch22", None)
    with pytest.raises(ImportError, match=r"pip install 's2gen\[eval\]'"):
        baselines.catch22_features([np.ones((1, 4))])


def test_baselines_on_gunpoint():
    """Reference points: the published MiniRocket (~0.99-1.0) and catch22 accuracies."""
    data = load_classification("GunPoint")
    args = (data.train.series, data.train.labels, data.test.series, data.test.labels)
    assert baselines.minirocket_ridge(*args)["accuracy"] >= 0.97
    assert baselines.catch22_rf(*args)["accuracy"] >= 0.95
    dtw = baselines.nn1_dtw(*args)
    assert dtw["window"] == 15 and dtw["accuracy"] >= 0.9
    assert baselines.nn1_euclidean(*args)["accuracy"] == pytest.approx(0.9133, abs=1e-3)
