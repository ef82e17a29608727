"""`s2gen evaluate` and `s2gen finetune` end to end on a tiny real pretraining checkpoint."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2gen.cli import main
from s2gen.evaluate.cli import evaluate, finetune
from s2gen.pretrain import PretrainConfig, run
from tests.tiny import tiny

DATA = Path(__file__).parent / "data" / "evaluate"
RAMPS = str(DATA / "Ramps_TRAIN.ts")
WOBBLE = str(DATA / "Wobble_TRAIN.ts")
MONTHLY = str(DATA / "monthly.csv")
TINY = tiny(
    window=64,
    patch=16,
    queue_size=64,
    batch_size=16,
    steps=3,
    val_samples=16,
    val_every=3,
    ckpt_every=3,
    log_every=1,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint: a 512-pair store and three pretraining steps of a d_model 16 encoder."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evaluate_cli")
    args = ["generate", "--n", "512", "--out", str(root / "store"), "--seed", "0"]
    result = CliRunner().invoke(main, [*args, "--workers", "1", "--length", "64", "--quiet"])
    assert result.exit_code == 0, result.output
    cfg = PretrainConfig.preset("ci", **TINY)
    run(cfg, str(root / "store"), str(root / "run"), device="cpu", progress=False)
    return str(root / "run" / "best.pt")


def invoke(command, *args, expect=0):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == expect, result.output
    return result


def test_evaluate_classification_checkpoint_random_init_and_baselines(checkpoint, tmp_path):
    out = tmp_path / "cls"
    result = invoke(
        evaluate,
        "--checkpoint",
        checkpoint,
        "--random-init",
        "--task",
        "classification",
        "--dataset",
        RAMPS,
        "--dataset",
        WOBBLE,
        "--seeds",
        2,
        "--classifier",
        "svm",
        "--out",
        out,
    )
    document = json.loads((out / "results.json").read_text())
    records = document["records"]
    keys = {(r["model"], r["dataset"], r["seed"]) for r in records}
    assert len(records) == len(keys) == 2 * 2 + 2 * 1 + 2 * 4  # 4 baselines per dataset
    assert ("run/best", "Ramps", None) in keys and ("random-init", "Wobble", 1) in keys
    assert ("1nn-euclidean", "Wobble", None) in keys and ("logreg-raw", "Ramps", None) in keys
    assert ("catch22-rf", "Wobble", None) in keys and ("minirocket", "Ramps", None) in keys
    dims = {(r["model"], r["dataset"]): r["info"].get("dim") for r in records}
    assert dims[("run/best", "Ramps")] == dims[("random-init", "Ramps")] == 32  # [CLS] + mean
    assert dims[("run/best", "Wobble")] == 2 * 32  # two channels, concatenated
    assert all(0.0 <= r["metrics"]["accuracy"] <= 1.0 for r in records)
    table = (out / "results.md").read_text()
    assert table in result.output
    assert "| Ramps |" in table and "±" in table  # random init: mean ± std over 2 seeds
    assert "**classification: summary over 2 datasets**" in table
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert document["config"]["checkpoints"] == [checkpoint]  # as given
    sha = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    assert document["config"]["checkpoint_sha256"] == [sha]
    assert document["config"]["resize"] == "linear" and document["config"]["dtw"] is False
    summary = document["summary"]["classification"]
    assert summary["datasets"] == ["Ramps", "Wobble"] and "run/best" in summary["models"]


def test_evaluate_probe_uses_the_checkpoint_weights(checkpoint, tmp_path):
    args = ("--task", "classification", "--dataset", RAMPS, "--no-baselines", "--seeds", 1)
    invoke(evaluate, "--checkpoint", checkpoint, *args, "--out", tmp_path / "a")
    same = json.loads((tmp_path / "a" / "results.json").read_text())["records"]
    assert [r["model"] for r in same] == ["run/best"]
    zeroed = tmp_path / "zeroed.pt"
    saved = torch.load(checkpoint, weights_only=True)
    saved["model"] = {
        k: torch.zeros_like(v) if k.startswith("series.") else v for k, v in saved["model"].items()
    }
    torch.save(saved, zeroed)
    invoke(evaluate, "--checkpoint", zeroed, *args, "--out", tmp_path / "b")
    flat = json.loads((tmp_path / "b" / "results.json").read_text())["records"]
    assert flat[0]["model"] == f"{tmp_path.name}/zeroed"
    assert flat[0]["metrics"]["accuracy"] == pytest.approx(0.5)  # constant features: chance
    assert same[0]["metrics"]["accuracy"] > 0.5


def test_evaluate_resize_rf_head_and_opt_in_dtw(checkpoint, tmp_path):
    from s2gen.evaluate.cli import _model_specs
    from s2gen.evaluate.datasets import load_classification

    series = [case[0] for case in load_classification(RAMPS).train.series]  # 12 points < 64
    linear = _model_specs((checkpoint,), False, None, "cpu", 8, "linear")[0].make_embed(None)
    none = _model_specs((checkpoint,), False, None, "cpu", 8, "none")[0].make_embed(None)
    a, b = linear(np.stack(series)), none(np.stack(series))
    assert a.shape == b.shape and np.isfinite(a).all() and np.isfinite(b).all()
    assert np.abs(a - b).max() > 1e-3  # resampled to 64 points vs left-padded to 16
    dims = {}
    for resize in ("linear", "none"):
        out = tmp_path / resize
        args = ("--task", "classification", "--dataset", RAMPS, "--no-baselines", "--dtw")
        args += ("--classifier", "rf", "--resize", resize, "--out", out)
        invoke(evaluate, "--checkpoint", checkpoint, *args)
        document = json.loads((out / "results.json").read_text())
        assert document["config"]["resize"] == resize and document["config"]["classifier"] == "rf"
        records = {r["model"]: r for r in document["records"]}
        assert set(records) == {"1nn-dtw", "run/best"}  # --no-baselines keeps --dtw
        assert records["1nn-dtw"]["info"]["window"] == 1  # floor(0.1 * 12)
        assert records["run/best"]["info"]["n_estimators"] == 200
        dims[resize] = records["run/best"]["info"]["dim"]
    assert dims["linear"] == dims["none"]


def test_evaluate_forecasting(checkpoint, tmp_path):
    out = tmp_path / "fc"
    invoke(
        evaluate,
        "--checkpoint",
        checkpoint,
        "--random-init",
        "--task",
        "forecasting",
        "--dataset",
        MONTHLY,
        "--horizon",
        6,
        "--context",
        24,
        "--period",
        12,
        "--column",
        "visitors",
        "--seeds",
        2,
        "--out",
        out,
    )
    records = json.loads((out / "results.json").read_text())["records"]
    models = sorted({r["model"] for r in records})
    assert models == ["naive", "random-init", "ridge-raw", "run/best", "seasonal-naive"]
    assert len(records) == 3 + 1 + 2
    assert all(set(r["metrics"]) == {"mse", "mae"} for r in records)
    assert all(r["info"]["horizon"] == 6 for r in records)
    errors = {r["model"]: r["metrics"]["mse"] for r in records if r["seed"] is None}
    assert errors["seasonal-naive"] < errors["naive"]  # the fixture has a 12-step season
    assert "forecasting: mse" in (out / "results.md").read_text()


def test_list_datasets_names_the_shipped_sets():
    result = invoke(evaluate, "--list-datasets")
    assert "GunPoint" in result.output and "BasicMotions" in result.output
    assert "co2" in result.output and "airline" in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--task", "classification", "--dataset", RAMPS], 2, "at least one --checkpoint"),
        (["--random-init", "--task", "forecasting", "--dataset", MONTHLY], 2, "needs --horizon"),
        (
            ["--random-init", "--task", "classification", "--dataset", RAMPS, "--horizon", "3"],
            2,
            "forecasting only",
        ),
        (
            ["--random-init", "--task", "classification", "--dataset", RAMPS, "--period", "4"],
            2,
            "--period applies to --task forecasting only",
        ),
        (
            ["--random-init", "--task", "classification", "--dataset", "NoSuchSet"],
            1,
            "Known names",
        ),
        (
            ["--random-init", "--task", "forecasting", "--dataset", MONTHLY, "--horizon", "90"],
            1,
            "shorten context or horizon",
        ),
    ],
)
def test_evaluate_bad_options_explain_the_fix(tmp_path, args, code, message):
    result = invoke(evaluate, *args, "--out", tmp_path, "--preset", "ci", expect=code)
    assert message in result.output


def test_finetune_cli_writes_checkpoint_and_results(checkpoint, tmp_path):
    out = tmp_path / "ft"
    result = invoke(
        finetune,
        "--checkpoint",
        checkpoint,
        "--dataset",
        RAMPS,
        "--epochs",
        3,
        "--batch-size",
        4,
        "--val-fraction",
        0.25,
        "--out",
        out,
    )
    assert "Ramps seed 0: test accuracy" in result.output
    saved = torch.load(out / "Ramps" / "seed0" / "finetuned.pt", weights_only=True)
    assert saved["classes"] == ["up", "down"] and 1 <= saved["epoch"] <= 3
    document = json.loads((out / "results.json").read_text())
    records = document["records"]
    assert len(records) == 1 and records[0]["task"] == "finetune"
    assert (
        document["config"]["checkpoint"] == checkpoint and document["config"]["resize"] == "linear"
    )
    sha = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    assert document["config"]["checkpoint_sha256"] == sha
    assert saved["config"]["resize"] == "linear"
    assert records[0]["model"] == "finetune: best"
    invoke(finetune, "--dataset", RAMPS, "--out", out, expect=2)
    invoke(
        finetune,
        "--checkpoint",
        checkpoint,
        "--random-init",
        "--dataset",
        RAMPS,
        "--out",
        out,
        expect=2,
    )


def _spy_on_finetune(monkeypatch) -> list[dict]:
    """Record the encoder weights every fine-tuning run starts from."""
    import s2gen.evaluate.finetune as finetune_module

    started, original = [], finetune_module.finetune

    def spy(encoder, *args, **kwargs):
        started.append({k: v.detach().clone() for k, v in encoder.state_dict().items()})
        return original(encoder, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "finetune", spy)
    return started


def test_finetune_starts_from_the_checkpoints_weights(checkpoint, tmp_path, monkeypatch):
    from s2gen.pretrain import load_encoder, random_encoder

    started = _spy_on_finetune(monkeypatch)
    args = ("--dataset", RAMPS, "--epochs", 1, "--batch-size", 4, "--out", tmp_path / "ft")
    invoke(finetune, "--checkpoint", checkpoint, *args)
    saved = load_encoder(checkpoint).state_dict()
    assert len(started) == 1 and started[0].keys() == saved.keys()
    for name, value in saved.items():
        assert torch.equal(started[0][name], value), name  # the pretrained weights
    cfg = PretrainConfig.preset("ci", **TINY)
    fresh = random_encoder("ci", seed=0, **TINY).state_dict()
    assert cfg.seed == 0 and any(not torch.equal(fresh[k], v) for k, v in saved.items())


def test_finetune_random_init_runs_each_seed_from_its_own_init(tmp_path, monkeypatch):
    started = _spy_on_finetune(monkeypatch)
    out = tmp_path / "ft-random"
    args = ("--random-init", "--preset", "ci", "--dataset", RAMPS, "--seeds", 2, "--epochs", 2)
    result = invoke(finetune, *args, "--batch-size", 4, "--out", out)
    records = json.loads((out / "results.json").read_text())["records"]
    assert [r["seed"] for r in records] == [0, 1]
    assert all(0 <= r["metrics"]["accuracy"] <= 1 for r in records)
    assert (out / "Ramps" / "seed0" / "finetuned.pt").exists()
    assert (out / "Ramps" / "seed1" / "finetuned.pt").exists()
    assert "Ramps seed 1: test accuracy" in result.output
    assert len(started) == 2
    assert any(not torch.equal(started[0][k], v) for k, v in started[1].items())


def test_checkpoint_columns_are_named_by_file_and_made_unique():
    from s2gen.evaluate.cli import _checkpoint_names

    assert _checkpoint_names(("a/best.pt", "b/best.pt")) == ["a/best", "b/best"]
    assert _checkpoint_names(("a/best.pt", "a/best.pt")) == ["a/best#1", "a/best#2"]


BUMPS = str(DATA / "bumps.csv")


def test_evaluate_anomaly_masking_finds_the_injected_anomalies(checkpoint, tmp_path):
    out = tmp_path / "anomaly"
    invoke(
        evaluate,
        *("--checkpoint", checkpoint, "--random-init", "--seeds", 2, "--task", "anomaly"),
        *("--dataset", BUMPS, "--label-column", "label", "--out", out),
    )
    document = json.loads((out / "results.json").read_text())
    config = document["config"]
    assert config["test_fraction"] == 0.5 and config["score"] == "masking"
    assert config["label_column"] == "label" and config["protocol"] is None
    records = {(r["model"], r["seed"]): r for r in document["records"]}
    assert set(records) == {
        ("zscore", None),
        ("random", None),
        ("run/best", None),
        ("random-init", 0),
        ("random-init", 1),
    }
    assert all(set(r["metrics"]) == {"f1"} for r in records.values())
    masking = records[("run/best", None)]
    assert masking["info"]["score"] == "masking" and masking["info"]["segments"] == 6
    assert masking["info"]["n_test"] == 500 and masking["info"]["context"] == 48
    # 5 of the 6 injected anomalies found (F1 0.79); random scores flag nothing (F1 0)
    assert masking["info"]["detected"] >= 4 and masking["metrics"]["f1"] > 0.6
    assert records[("random", None)]["metrics"]["f1"] == 0.0
    assert masking["metrics"]["f1"] > records[("zscore", None)]["metrics"]["f1"]
    assert document["summary"]["anomaly"]["metric"] == "f1"
    assert "anomaly: f1" in (out / "results.md").read_text()


def test_evaluate_forecasting_ts2vec_protocol_uses_the_last_token(checkpoint, tmp_path):
    out = tmp_path / "ts2vec"
    invoke(
        evaluate,
        *("--checkpoint", checkpoint, "--random-init", "--seeds", 1, "--task", "forecasting"),
        *("--dataset", MONTHLY, "--horizon", 6, "--context", 24, "--column", "visitors"),
        *("--protocol", "ts2vec", "--out", out),
    )
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["protocol"] == "ts2vec"
    records = {r["model"]: r for r in document["records"]}
    from s2gen.evaluate.protocols import TS2VEC_ALPHAS

    for model in ("run/best", "random-init"):
        info = records[model]["info"]
        assert info["protocol"] == "ts2vec" and info["dim"] == 16  # one token state, d_model
        assert info["alpha"] in TS2VEC_ALPHAS and info["n_val"] >= 1
    assert records["ridge-raw"]["info"]["protocol"] == "ts2vec"
    assert records["naive"]["info"]["protocol"] == "ts2vec"  # the run's protocol, on every row
    window = tmp_path / "window"
    invoke(
        evaluate,
        *("--checkpoint", checkpoint, "--task", "forecasting", "--dataset", MONTHLY),
        *("--horizon", 6, "--context", 24, "--column", "visitors", "--out", window),
    )
    plain = json.loads((window / "results.json").read_text())
    assert plain["config"]["protocol"] == "window"
    best = {r["model"]: r for r in plain["records"]}["run/best"]
    assert best["info"]["protocol"] == "window" and best["info"]["dim"] == 32


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "classification", "--protocol", "ts2vec"], "forecasting only"),
        (["--task", "forecasting", "--horizon", "3", "--score", "masking"], "anomaly only"),
        (["--task", "anomaly", "--label-column", "label", "--horizon", "3"], "forecasting only"),
        (["--task", "classification", "--label-column", "label"], "anomaly only"),
    ],
)
def test_evaluate_task_options_are_checked(tmp_path, args, message):
    result = invoke(
        evaluate, "--random-init", "--dataset", BUMPS, *args, "--out", tmp_path, expect=2
    )
    assert message in result.output


def test_embed_patch_level_gives_the_token_states(checkpoint, tmp_path):
    from s2gen.pretrain import load_encoder
    from s2gen.pretrain.cli import embed

    series = np.random.default_rng(0).normal(size=(3, 40))
    np.savetxt(tmp_path / "in.csv", series, delimiter=",")
    args = ("--checkpoint", checkpoint, "--input", tmp_path / "in.csv", "--device", "cpu")
    result = invoke(embed, *args, "--level", "patch", "--out", tmp_path / "tokens.npy")
    tokens = np.load(tmp_path / "tokens.npy")
    assert tokens.shape == (3, 4, 16) and "(3, 4, 16)" in result.output  # 64 / 16 patches, d 16
    encoder = load_encoder(checkpoint)
    with torch.no_grad():
        expected = encoder.forward_tokens(torch.from_numpy(series).float()).numpy()
    np.testing.assert_allclose(tokens, expected, atol=1e-5)
    instance = encoder.embed(series)
    np.testing.assert_allclose(instance[:, 16:], tokens.mean(axis=1), atol=1e-5)  # patch mean
    result = invoke(embed, *args, "--level", "patch", "--out", tmp_path / "t.csv", expect=2)
    assert "give a .npy path" in result.output
    with pytest.raises(ValueError, match="one token count"):
        encoder.embed([np.ones(20), np.ones(40)], resize="none", level="patch")
    assert encoder.embed([np.ones(20), np.ones(40)], level="patch").shape == (2, 4, 16)


def test_finetune_config_file_with_flags_on_top(checkpoint, tmp_path):
    settings = tmp_path / "ft.toml"
    settings.write_text("epochs = 3\nbatch_size = 4\nval_fraction = 0.25\nseeds = 2\nlr = 1e-3\n")
    out = tmp_path / "ft"
    args = ("--checkpoint", checkpoint, "--dataset", RAMPS, "--out", out)
    result = invoke(finetune, *args, "--config", settings, "--epochs", 1)
    assert "Ramps seed 1: test accuracy" in result.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["batch_size"] == 4 and saved["seeds"] == 2
    assert saved["lr"] == 1e-3 and saved["head_lr"] == 1e-3 and saved["resize"] == "linear"
    checkpoint_cfg = torch.load(out / "Ramps" / "seed1" / "finetuned.pt", weights_only=True)
    assert checkpoint_cfg["config"]["epochs"] == 1 and checkpoint_cfg["config"]["lr"] == 1e-3
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["epochs"] == 1 and len(document["records"]) == 2
    again = tmp_path / "again"
    invoke(
        finetune,
        "--checkpoint",
        checkpoint,
        "--dataset",
        RAMPS,
        "--config",
        out / "config.json",
        "--out",
        again,
    )
    assert json.loads((again / "config.json").read_text()) == saved  # config.json is a --config
    settings.write_text("epochs = 3\nlearning_rate = 0.1\n")
    result = invoke(finetune, *args, "--config", settings, expect=2)
    assert "unknown fine-tuning setting(s) ['learning_rate']" in result.output
    settings.write_text('epochs = "3"\n')
    result = invoke(finetune, *args, "--config", settings, expect=2)
    assert "epochs='3' is invalid" in result.output
