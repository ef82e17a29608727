"""MLflow tracking and the model registry against a real sqlite store in a temporary directory.

Two short pretraining runs are logged and registered as versions 1 and 2 of one
model; ``finetune``, ``evaluate`` and ``embed`` then read them back by
``models:/NAME/VERSION``. The working directory is an empty folder for the whole
module, and nothing may appear in it or in the repository (MLflow's default
store is a ``mlflow.db`` in the working directory: s2gen must never fall back to it).
"""

import hashlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

from s2gen import tracking
from s2gen.cli import main
from s2gen.evaluate.cli import evaluate, finetune
from s2gen.pretrain import load_encoder
from s2gen.pretrain.cli import embed, pretrain
from tests.tiny import tiny

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
RAMPS = str(Path(__file__).parent / "data" / "evaluate" / "Ramps_TRAIN.ts")
TINY = tiny(
    window=64,
    patch=16,
    queue_size=64,
    batch_size=16,
    val_samples=16,
    val_every=3,
    ckpt_every=3,
    log_every=1,
)
WEIGHT = "series.frontend.proj.weight"


def invoke(command, *args, expect=0):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == expect, result.output
    return result


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weight(path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["model"][WEIGHT]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Runs 0 and 1 (seeds 0 and 1, 3 steps) logged and registered as enc versions 1 and 2."""
    root = tmp_path_factory.mktemp("tracking")
    cwd = root / "cwd"
    cwd.mkdir()
    repo_before = sorted(os.listdir(ROOT))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        for name in (tracking.ENV_URI, tracking.ENV_EXPERIMENT):
            patch.delenv(name, raising=False)
        args = ["generate", "--n", "512", "--out", root / "store", "--seed", 0]
        invoke(main, *args, "--workers", 1, "--length", 64, "--quiet")
        (root / "tiny.json").write_text(json.dumps(TINY))
        uri = f"sqlite:///{root / 'mlflow.db'}"
        outputs = []
        for seed in (0, 1):
            result = invoke(
                pretrain,
                *("--data", root / "store", "--out", root / f"run{seed}", "--preset", "ci"),
                *("--config", root / "tiny.json", "--steps", 3, "--seed", seed),
                *("--device", "cpu", "--quiet", "--mlflow", uri, "--register", "enc"),
            )
            outputs.append(result.output)
        yield SimpleNamespace(
            root=root,
            cwd=cwd,
            uri=uri,
            runs=[root / "run0", root / "run1"],
            outputs=outputs,
            repo_before=repo_before,
        )


def _nothing_written_outside(registry) -> None:
    assert os.listdir(registry.cwd) == []
    assert sorted(os.listdir(ROOT)) == registry.repo_before
    for name in ("mlruns", "mlflow.db", "mlartifacts"):
        assert not (ROOT / name).exists()


def test_pretrain_logs_config_metrics_checkpoints_and_registers_two_versions(registry):
    assert "registered models:/enc/1" in registry.outputs[0]
    assert "registered models:/enc/2" in registry.outputs[1]
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    versions = {str(v.version): v for v in client.search_model_versions("name='enc'")}
    assert sorted(int(v) for v in versions) == [1, 2]
    for seed, run_dir in enumerate(registry.runs):
        run_id = json.loads((run_dir / tracking.STATE_FILE).read_text())["run_id"]
        assert versions[str(seed + 1)].run_id == run_id
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["d_model"] == "16" and params["seed"] == str(seed)
        saved = json.loads((run_dir / "config.json").read_text())
        assert params["max_tokens"] == str(saved["max_tokens"]) != "0"  # the resolved config
        history = client.get_metric_history(run_id, "loss")
        assert [m.step for m in history] == [1, 2, 3]
        logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [m.value for m in history] == pytest.approx([m["loss"] for m in logged[:3]])
        assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [3]
        root_files = {a.path for a in client.list_artifacts(run_id)}
        assert {"config.json", "run.json", "metrics.jsonl", "last.pt", "model"} <= root_files
        model_files = {a.path for a in client.list_artifacts(run_id, "model")}
        assert model_files == {"model/best.pt", "model/config.json"}
        stored = list((registry.root / "mlartifacts").rglob(f"{run_id}/artifacts/model/best.pt"))
        assert len(stored) == 1 and sha(stored[0]) == sha(run_dir / "best.pt")
    assert sha(registry.runs[0] / "best.pt") != sha(registry.runs[1] / "best.pt")
    _nothing_written_outside(registry)


def test_finetune_loads_version_1_from_the_registry_and_logs_its_run(registry):
    out = registry.root / "ft"
    result = invoke(
        finetune,
        *("--checkpoint", "models:/enc/1", "--mlflow", registry.uri, "--dataset", RAMPS),
        *("--epochs", 2, "--batch-size", 4, "--val-fraction", 0.25, "--out", out),
    )
    assert "tracking is off" not in result.output
    document = json.loads((out / "results.json").read_text())
    config = document["config"]
    assert config["checkpoint"] == "models:/enc/1"
    assert config["checkpoint_sha256"] == sha(registry.runs[0] / "best.pt")
    local = Path(config["checkpoint_file"])
    assert local.is_relative_to(out / "registry") and local.name == "best.pt"
    loaded = load_encoder(local).backbone.frontend.proj.weight
    assert torch.equal(loaded, weight(registry.runs[0] / "best.pt"))  # version 1's weights
    assert not torch.equal(loaded, weight(registry.runs[1] / "best.pt"))
    assert document["records"][0]["model"] == "finetune: enc/1"

    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("s2gen").experiment_id],
        filter_string="attributes.run_name = 'finetune Ramps seed0'",
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    assert runs[0].data.params["dataset"] == "Ramps" and runs[0].data.params["epochs"] == "2"
    history = client.get_metric_history(run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert "test_accuracy" in runs[0].data.metrics
    assert {a.path for a in client.list_artifacts(run_id)} == {"finetuned.pt"}
    _nothing_written_outside(registry)


def test_evaluate_and_embed_read_registry_versions(registry, monkeypatch, tmp_path):
    monkeypatch.setenv(tracking.ENV_URI, registry.uri)  # evaluate without --mlflow
    out = registry.root / "ev"
    invoke(
        evaluate,
        *("--checkpoint", "models:/enc/latest", "--checkpoint", "models:/enc/1"),
        *("--task", "classification", "--dataset", RAMPS, "--no-baselines", "--out", out),
    )
    document = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in document["records"]] == ["enc/latest", "enc/1"]
    assert document["config"]["checkpoint_sha256"] == [
        sha(registry.runs[1] / "best.pt"),  # latest = version 2
        sha(registry.runs[0] / "best.pt"),
    ]
    monkeypatch.delenv(tracking.ENV_URI)
    series = np.random.default_rng(0).normal(size=(3, 40))
    np.savetxt(tmp_path / "in.csv", series, delimiter=",")
    invoke(
        embed,
        *("--checkpoint", "models:/enc/2", "--mlflow", registry.uri),
        *("--input", tmp_path / "in.csv", "--out", tmp_path / "emb.npy", "--device", "cpu"),
    )
    expected = load_encoder(registry.runs[1] / "best.pt").embed(series)
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), expected, atol=1e-6)
    _nothing_written_outside(registry)


def test_resume_continues_the_same_mlflow_run(registry):
    out = registry.root / "resumed"
    args = ("--data", registry.root / "store", "--out", out, "--preset", "ci")
    args += ("--config", registry.root / "tiny.json", "--device", "cpu", "--quiet")
    args += ("--mlflow", registry.uri)
    invoke(pretrain, *args, "--steps", 2)
    first = json.loads((out / tracking.STATE_FILE).read_text())["run_id"]
    invoke(pretrain, *args, "--steps", 3, "--resume")
    assert json.loads((out / tracking.STATE_FILE).read_text())["run_id"] == first
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    assert [m.step for m in client.get_metric_history(first, "loss")] == [1, 2, 3]
    assert client.get_run(first).info.status == "FINISHED"
    _nothing_written_outside(registry)


@pytest.mark.parametrize(
    "command, args, message",
    [
        (finetune, ["--checkpoint", "models:/enc/9"], "is not in the registry"),
        (finetune, ["--checkpoint", "models:/enc"], "give models:/NAME/VERSION"),
        (finetune, ["--checkpoint", "models:/../1"], "model name '..' is invalid"),
        (finetune, ["--checkpoint", "no/such.pt"], "does not exist"),
        (evaluate, ["--checkpoint", "models:/nope/1", "--task", "classification"], "nope"),
    ],
)
def test_bad_registry_checkpoints_name_the_fix(registry, command, args, message):
    common = ["--dataset", RAMPS, "--out", registry.root / "bad", "--mlflow", registry.uri]
    result = invoke(command, *args, *common, expect=2)
    assert message in result.output


def test_registry_uri_without_a_store_and_register_misuse(registry, monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    result = invoke(
        finetune, "--checkpoint", "models:/enc/1", "--dataset", RAMPS, "--out", "x", expect=2
    )
    assert "--mlflow URI" in result.output and tracking.ENV_URI in result.output
    args = ("--data", registry.root / "store", "--out", registry.root / "never", "--quiet")
    result = invoke(pretrain, *args, "--register", "enc", expect=2)
    assert "--register NAME needs --mlflow URI" in result.output
    result = invoke(pretrain, *args, "--mlflow", registry.uri, "--register", "a b", expect=2)
    assert "model name 'a b' is invalid" in result.output
    result = invoke(pretrain, *args, "--mlflow", "plainstore", expect=1)  # a file store
    assert "MLflow at plainstore:" in result.output
    assert "(a local store: --mlflow sqlite:///mlflow.db)" in result.output
    assert not (registry.root / "never").exists()
    _nothing_written_outside(registry)


def test_without_mlflow_runs_work_and_say_how_to_enable_tracking(registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    base = ("--data", registry.root / "store", "--preset", "ci", "--steps", 2, "--quiet")
    base += ("--config", registry.root / "tiny.json", "--device", "cpu")
    result = invoke(pretrain, *base, "--out", registry.root / "plain")
    hint = "tracking is off: add --mlflow sqlite:///mlflow.db to log this pretrain run"
    assert result.output.count(hint) == 1 and "pip install 's2gen[track]'" in result.output
    assert "pretrained 2 steps" in result.output
    result = invoke(pretrain, *base, "--out", registry.root / "wanted", "--mlflow", "x", expect=1)
    assert "--mlflow needs MLflow: pip install 's2gen[track]'" in result.output
    result = invoke(
        finetune,
        *("--checkpoint", registry.runs[0] / "best.pt", "--dataset", RAMPS, "--epochs", 1),
        *("--batch-size", 4, "--val-fraction", 0.25, "--out", registry.root / "ft-plain"),
    )
    assert result.output.count("tracking is off") == 1 and "test accuracy" in result.output


def test_artifact_location_and_labels():
    assert tracking.artifact_location("sqlite:////data/runs/mlflow.db") == (
        Path("/data/runs/mlartifacts").as_uri()
    )
    assert tracking.artifact_location("sqlite:///mlflow.db") == (
        (Path.cwd() / "mlartifacts").as_uri()
    )
    assert tracking.artifact_location("http://localhost:5000") is None
    assert tracking.checkpoint_label("models:/enc/3") == "enc/3"
    assert tracking.checkpoint_label("runs/a/best.pt") == "best"
    with pytest.raises(ValueError, match="model name"):
        tracking.check_name("-enc")


def test_only_rank_0_tracks_under_ddp(monkeypatch, capsys):
    from s2gen.pretrain.cli import _tracker

    monkeypatch.setenv("RANK", "1")
    assert _tracker("sqlite:///never.db", "enc", "out") is None  # no client, no file
    assert _tracker(None, None, "out") is None
    assert capsys.readouterr().err == ""  # the hint is rank 0's too
    assert not Path("never.db").exists()
