"""Task heads and their fine-tuning on real tiny encoders: shapes and units, the per-point
reconstruction scores against a plain loop, anomaly metrics and data, and synthetic tasks the
gpt2 backbone (a tiny random GPT-2) must learn: a sinusoid forecast better than the naive one,
two frequency classes above 90%."""

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download

from s2gen.evaluate.anomaly import load_anomaly  # noqa: E402
from s2gen.evaluate.cli import finetune as finetune_command  # noqa: E402
from s2gen.evaluate.datasets import ClassificationData  # noqa: E402
from s2gen.evaluate.finetune import FinetuneConfig, finetune  # noqa: E402
from s2gen.evaluate.finetune_series import (  # noqa: E402
    anomaly_metrics,
    finetune_anomaly,
    finetune_forecasting,
)
from s2gen.evaluate.heads import (  # noqa: E402
    EncoderForecaster,
    EncoderReconstructor,
    reconstruction_scores,
)
from s2gen.evaluate.protocols import ForecastConfig, make_windows  # noqa: E402
from s2gen.evaluate.ts_format import TsData  # noqa: E402
from s2gen.pretrain.encoder import random_encoder  # noqa: E402

torch.set_num_threads(1)
GPT2 = dict(backbone="gpt2", window=64, patch=8, d_model=64, n_heads=4, d_ff=128, llm_layers=2)
S2 = dict(window=64, patch=8, d_model=32, n_heads=2, d_ff=64, n_layers=1)


def test_forecaster_flattens_tokens_and_works_in_the_units_of_its_input():
    encoder = random_encoder("ci", seed=0, scale_token=False, **S2)  # sees no level or scale
    model = EncoderForecaster(encoder, 48, 5, torch.Generator().manual_seed(0)).eval()
    assert model.head.in_features == 8 * 32  # window 64 / patch 8 tokens of width 32
    x = torch.randn(3, 48)
    y = model(x)
    assert y.shape == (3, 5)
    torch.testing.assert_close(model(10.0 + 3.0 * x), 10.0 + 3.0 * y, atol=1e-4, rtol=1e-4)
    kept = EncoderForecaster(encoder, 20, 5, torch.Generator(), resize="none")
    assert kept.head.in_features == 3 * 32  # 20 points left-padded to 24: 3 tokens


def test_reconstruction_scores_match_a_plain_loop_over_windows():
    encoder = random_encoder("ci", seed=1, **S2)
    model = EncoderReconstructor(encoder, torch.Generator().manual_seed(0))
    values = np.random.default_rng(0).normal(size=150).cumsum().astype(np.float32)
    scores = reconstruction_scores(model, values, batch_size=2)
    assert scores.shape == (150,) and model.training  # eval inside, restored after
    expected, count = np.zeros(150), np.zeros(150)
    for start in (0, 64, 86):  # two whole windows, then one ending at the last point
        window = torch.from_numpy(values[start : start + 64])[None]
        with torch.no_grad():
            model.eval()
            recon, target = model(window)
        expected[start : start + 64] += ((recon - target) ** 2)[0].numpy()
        count[start : start + 64] += 1
    np.testing.assert_allclose(scores, expected / count, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least window=64"):
        reconstruction_scores(model, values[:50])
    with pytest.raises(ValueError, match="NaN"):
        reconstruction_scores(model, np.full(80, np.nan))


def test_anomaly_metrics_on_a_hand_computed_case():
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.3])
    labels = np.array([0, 1, 0, 0, 1])
    metrics = anomaly_metrics(scores, labels)
    assert metrics["auc_roc"] == pytest.approx(5 / 6)  # pairs anomaly > normal: 3 + 2 of 6
    assert metrics["auc_pr"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # hits at ranks 1 and 3
    with pytest.raises(ValueError, match="one class"):
        anomaly_metrics(scores, np.zeros(5))


def test_anomaly_series_by_name_and_path(tmp_path):
    yahoo = load_anomaly("Yahoo")
    assert yahoo.values.shape == yahoo.labels.shape == (1000,) and yahoo.labels.sum() == 7
    (tmp_path / "s.csv").write_text("value,label\n1.0,0\n2.5,1\n3.0,0\n")
    own = load_anomaly(tmp_path / "s.csv")
    assert own.name == "s" and own.labels.tolist() == [False, True, False]
    (tmp_path / "bad.csv").write_text("value,label\n1.0,0\n2.5,2\n")
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        load_anomaly(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="Known names: mitdb, yahoo"):
        load_anomaly("nab")


def sinusoid(n=1200, period=16, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / period + 0.3) + 0.05 * rng.standard_normal(n)


def test_gpt2_learns_to_forecast_a_sinusoid_better_than_the_naive_forecast(tmp_path):
    values = sinusoid()
    forecast = ForecastConfig(horizon=8, context=64, test_fraction=0.2)
    cfg = FinetuneConfig(epochs=8, batch_size=32, lr=3e-3, head_lr=3e-3, patience=8, seed=0)
    encoder = random_encoder("ci", seed=0, **GPT2)
    frozen = {n: encoder.backbone.get_parameter(n).clone() for n in encoder.backbone.frozen}
    result = finetune_forecasting(encoder, values, forecast, cfg, tmp_path, "sine")
    windows = make_windows(values, forecast)
    naive = np.mean((windows.test_context[:, -1:] - windows.test_target) ** 2)
    assert result.metrics["mse"] < 0.05 * naive, (result.metrics, naive)
    assert result.epochs_run * 22 >= 170  # 700 train windows / 32: a few hundred steps
    assert all(torch.equal(encoder.backbone.get_parameter(n), t) for n, t in frozen.items())
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["epoch"] == result.best_epoch and saved["horizon"] == 8
    assert not any("base_layer" in k for k in saved["model"])  # no frozen base in it
    model = EncoderForecaster(random_encoder("ci", seed=0, **GPT2), 64, 8, torch.Generator())
    x = torch.from_numpy(windows.test_context[:64]).float()
    target = windows.test_target[:64]
    with torch.no_grad():
        untrained = np.mean((model.eval()(x).numpy() - target) ** 2)
        model.load_state_dict(saved["model"])  # the same random base (seed 0) is rebuilt
        restored = np.mean((model(x).numpy() - target) ** 2)
    assert restored < 0.05 * naive < untrained


def frequency_classes(n, seed):
    """Two classes of noisy sines of random phase: 3 or 6 cycles per 64 points."""
    rng = np.random.default_rng(seed)
    labels = np.array(["slow", "fast"] * (n // 2))
    cycles = np.where(labels == "slow", 3.0, 6.0)[:, None]
    t = np.arange(64)[None, :] / 64
    x = np.sin(2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    x = x + 0.3 * rng.standard_normal((n, 64))
    return TsData(tuple(x[:, None, :]), labels, ("slow", "fast"))


def test_gpt2_learns_two_frequency_classes_above_90_percent(tmp_path):
    data = ClassificationData("Freq", frequency_classes(64, 0), frequency_classes(64, 1), "test")
    cfg = FinetuneConfig(epochs=25, batch_size=8, lr=3e-3, head_lr=3e-3, patience=25, seed=0)
    result = finetune(random_encoder("ci", seed=0, **GPT2), data, cfg, tmp_path)
    assert result.test_accuracy > 0.9, result.history[-1]


def test_anomaly_finetune_scores_the_test_tail_of_yahoo(tmp_path):
    series = load_anomaly("yahoo")
    cfg = FinetuneConfig(epochs=3, batch_size=8, lr=1e-3, head_lr=1e-3, seed=0)
    encoder = random_encoder("ci", seed=0, **S2)
    result = finetune_anomaly(encoder, series.values, series.labels, 0.5, cfg, tmp_path, "yahoo")
    assert set(result.metrics) == {"auc_roc", "auc_pr"}
    assert result.metrics["auc_roc"] > 0.9  # Yahoo's anomalies are spikes
    assert torch.load(result.checkpoint, weights_only=True)["window"] == 64
    with pytest.raises(ValueError, match="one class"):  # the tail of 1000 points has none
        finetune_anomaly(encoder, series.values[:400], series.labels[:400], 0.5, cfg, tmp_path)


def test_finetune_command_runs_each_task_and_checks_its_options(tmp_path):
    common = ["--random-init", "--preset", "ci", "--epochs", "1", "--batch-size", "32"]
    common += ["--backbone", "gpt2", "--llm-layers", "2", "--frontend", "multiscale"]
    result = CliRunner().invoke(
        finetune_command,
        [*common, "--task", "forecasting", "--dataset", "airline", "--horizon", "6"]
        + ["--context", "24", "--out", str(tmp_path / "f")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "randomly initialised" in result.output and "finetune-forecasting: mse" in result.output
    result = CliRunner().invoke(
        finetune_command,
        [*common, "--task", "anomaly", "--dataset", "yahoo", "--test-fraction", "0.5"]
        + ["--out", str(tmp_path / "a")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "finetune-anomaly: auc_roc" in result.output
    bad = CliRunner().invoke(
        finetune_command, [*common, "--task", "forecasting", "--dataset", "airline", "--out", "x"]
    )
    assert bad.exit_code != 0 and "needs --horizon" in bad.output
    bad = CliRunner().invoke(
        finetune_command,
        ["--checkpoint", __file__, "--lora-rank", "4", "--dataset", "x", "--out", "x"],
    )
    assert bad.exit_code == 1 and "is not an s2gen checkpoint" in bad.output  # one line, no trace
