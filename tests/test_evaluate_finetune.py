"""Fine-tuning with a tiny stand-in encoder: splits, early stopping, checkpoint, config checks.

The stand-in has the ``SeriesEncoder`` interface of ``s2gen.pretrain`` (``dim``,
``forward_features``); the CLI test runs the real encoder. MLflow logging is tested
against a real store in tests/test_tracking.py.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from s2gen.evaluate.datasets import ClassificationData, load_classification
from s2gen.evaluate.finetune import (
    EncoderClassifier,
    FinetuneConfig,
    finetune,
    stratified_split,
)
from s2gen.evaluate.ts_format import TsData

DATA = Path(__file__).parent / "data" / "evaluate"
torch.set_num_threads(1)


class StandIn(nn.Module):
    """Instance-normalise, resample to 16 points, one hidden layer: (B, L) -> (B, 8)."""

    dim = 8

    def __init__(self, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(16, 16, generator=generator) * 0.3)
        self.w2 = nn.Parameter(torch.randn(16, self.dim, generator=generator) * 0.3)

    def forward_features(self, x: torch.Tensor, resize: str = "linear") -> torch.Tensor:
        assert resize in ("linear", "none")  # the interface; the stand-in always resamples
        x = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)
        x = nn.functional.interpolate(x[:, None, :], size=16, mode="linear")[:, 0]  # (B, 16)
        return torch.tanh(x @ self.w1) @ self.w2  # (B, dim)


def _dataset(n_train, n_test, seed, channels=1):
    rng = np.random.default_rng(seed)

    def cases(n):
        labels = np.array(["up", "down"] * (n // 2))
        sign = np.where(labels == "up", 1.0, -1.0)[:, None, None]
        x = sign * np.linspace(-1, 1, 20)[None, None, :] + 0.3 * rng.standard_normal(
            (n, channels, 20)
        )
        return TsData(tuple(x), labels, ("up", "down"))

    return ClassificationData("Ramps", cases(n_train), cases(n_test), "test")


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 1)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).tolist() == list(range(14))
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 0]
    assert set(labels[train]) == {0, 1, 2}
    other, _ = stratified_split(labels, 0.2, seed=1)
    assert not np.array_equal(train, other)
    with pytest.raises(ValueError, match="no validation split"):
        stratified_split(np.array([0, 1]), 0.5, seed=0)


def test_classifier_concatenates_channel_features():
    model = EncoderClassifier(
        StandIn(0), n_channels=3, n_classes=4, generator=torch.Generator().manual_seed(0)
    )
    assert model.head.in_features == 24
    assert model(torch.randn(5, 3, 30)).shape == (5, 4)


def test_finetune_learns_saves_best_checkpoint_and_is_reproducible(tmp_path):
    data = _dataset(40, 40, seed=0)
    cfg = FinetuneConfig(epochs=30, batch_size=8, lr=1e-2, head_lr=1e-2, patience=5, seed=3)
    state = torch.get_rng_state()
    result = finetune(StandIn(0), data, cfg, tmp_path / "a")
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert result.test_accuracy >= 0.9
    assert result.history[0]["train_loss"] > result.history[result.best_epoch - 1]["train_loss"]
    assert result.epochs_run <= 30 and result.best_epoch <= result.epochs_run
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["epoch"] == result.best_epoch
    assert saved["val_accuracy"] == result.val_accuracy
    assert saved["classes"] == ["up", "down"] and saved["config"]["seed"] == 3
    model = EncoderClassifier(StandIn(9), 1, 2, torch.Generator())
    model.load_state_dict(saved["model"])
    again = finetune(StandIn(0), data, cfg, tmp_path / "b")
    assert again.history == result.history


def test_early_stopping_stops_after_patience(tmp_path):
    data = _dataset(20, 10, seed=1)
    cfg = FinetuneConfig(epochs=50, lr=1e-9, head_lr=1e-9, patience=2, seed=0)
    result = finetune(StandIn(0), data, cfg, tmp_path)
    assert result.epochs_run == result.best_epoch + 2 < 50


def test_test_split_is_never_used_for_selection(tmp_path):
    data = _dataset(20, 10, seed=2)
    flipped = ClassificationData(
        "Ramps",
        data.train,
        TsData(data.test.series, np.where(data.test.labels == "up", "down", "up"), ("up", "down")),
        "test",
    )
    cfg = FinetuneConfig(epochs=8, lr=1e-2, head_lr=1e-2, patience=8, seed=0)
    a = finetune(StandIn(0), data, cfg, tmp_path / "a")
    b = finetune(StandIn(0), flipped, cfg, tmp_path / "b")
    assert a.history == b.history and a.best_epoch == b.best_epoch
    assert a.test_accuracy == pytest.approx(1.0 - b.test_accuracy)


def test_multivariate_unequal_length_fixture_runs(tmp_path):
    data = load_classification(DATA / "Wobble_TRAIN.ts")
    cfg = FinetuneConfig(epochs=2, batch_size=4, val_fraction=0.34, seed=0)
    result = finetune(StandIn(0), data, cfg, tmp_path)
    assert 0.0 <= result.test_accuracy <= 1.0
    assert torch.load(result.checkpoint, weights_only=True)["n_channels"] == 2


def test_unknown_test_label_is_an_error(tmp_path):
    data = _dataset(10, 4, seed=0)
    odd = ClassificationData(
        "Ramps", data.train, TsData(data.test.series, np.array(["up"] * 3 + ["left"])), "t"
    )
    with pytest.raises(ValueError, match="'left'"):
        finetune(StandIn(0), odd, FinetuneConfig(epochs=1), tmp_path)


def test_config_names_the_bad_field():
    with pytest.raises(ValueError, match="val_fraction=1.0"):
        FinetuneConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="patience=0"):
        FinetuneConfig(patience=0)
    with pytest.raises(ValueError, match="epochs='3' is invalid: it must be an integer"):
        FinetuneConfig(epochs="3")  # a settings file's string, not compared as a number


def test_mlflow_uri_without_mlflow_gives_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    with pytest.raises(ImportError, match=r"pip install 's2gen\[track\]'"):
        finetune(
            StandIn(0),
            _dataset(10, 4, 0),
            FinetuneConfig(epochs=1),
            tmp_path,
            mlflow_uri="file:///x",
        )


def test_resize_reaches_the_encoder_and_is_checked(tmp_path):
    seen = []

    class Recording(StandIn):
        def forward_features(self, x, resize="linear"):
            seen.append(resize)
            return super().forward_features(x, resize)

    cfg = FinetuneConfig(epochs=1, seed=0, resize="none")
    result = finetune(Recording(0), _dataset(10, 4, seed=0), cfg, tmp_path)
    assert seen and set(seen) == {"none"}
    assert torch.load(result.checkpoint, weights_only=True)["config"]["resize"] == "none"
    with pytest.raises(ValueError, match="resize='cubic'"):
        FinetuneConfig(resize="cubic")
