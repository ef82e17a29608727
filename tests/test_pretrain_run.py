"""`s2gen.pretrain` on a real tiny store: data stream, learning, resume, hooks, encoder, CLI."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.pretrain import PretrainConfig, load_encoder, run
from s2gen.pretrain.cli import embed, pretrain
from s2gen.pretrain.data import split_of
from s2gen.pretrain.stream import S2WindowStream, held_out_set, make_loader

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
STORE_ROWS = 3072
TINY = dict(
    window=64,
    patch=8,
    d_model=32,
    n_heads=2,
    d_ff=64,
    n_layers=1,
    sym_d_model=32,
    sym_heads=2,
    sym_d_ff=64,
    sym_layers=1,
    max_tokens=32,
    embed_dim=16,
    queue_size=96,
    batch_size=32,
    val_permille=150,
    reference_permille=50,
    val_samples=256,
    buffer_chunks=2,
    num_workers=0,
    log_every=1,
    lr=1e-3,
)
# Expression families whose series differ in kind (random walk, differenced, smoothed, spiky,
# folded, linear) over iid mixture inputs: a tiny model learns to retrieve them in seconds.
FAMILIES = "add=1,abs=1,exp=1,diff=1,cumsum=1,mavg4=1," + ",".join(
    f"{op}=0"
    for op in "sub mul div inv sqrt pow2 pow3 log sin cos tan arctan arcsin arccos".split()
    + "lag1 lag4 lag16 mavg16".split()
)


def tiny_cfg(**overrides) -> PretrainConfig:
    return PretrainConfig.preset("ci", **{**TINY, **overrides})


def make_store(tmp_path_factory) -> str:
    """A 3072-row store (L = 64, up to 2 outputs), generated once per test session."""
    path = tmp_path_factory.getbasetemp() / "pretrain_store"
    if not (path / "zarr.json").exists():
        args = ["generate", "--n", str(STORE_ROWS), "--out", str(path), "--seed", "0"]
        args += ["--length", "64", "--max-output-dim", "2", "--max-unary-ops", "1"]
        args += ["--binary-ops-offset", "0", "--const-leaf-prob", "0"]
        args += ["--sampler-preset", "paper", "--mixture-prob", "1"]  # mixture series only
        args += ["--operators", FAMILIES]
        args += ["--chunk-rows", "128", "--shard-rows", "512", "--workers", "1", "--quiet"]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return str(path)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory)


def read_metrics(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_stream_has_the_batch_contract_and_never_yields_held_out_rows(store_path):
    store = s2store.open(store_path)
    seeds = store.read(0, len(store), ["seed"])["seed"]
    cfg = tiny_cfg()
    stream = iter(S2WindowStream(store_path, cfg))
    rows, channels = [], []
    for _ in range(60):  # a bit over one pass over the training rows
        batch = next(stream)
        assert batch["series"].shape == (32, 64) and batch["series"].dtype == torch.float32
        assert batch["tokens"].dtype == torch.int64 and batch["tokens"].shape[1] <= 32
        assert batch["has_symbol"].dtype == torch.bool and batch["has_symbol"].all()
        assert batch["row"].dtype == torch.int64 and batch["expr_id"].dtype == torch.int64
        rows += batch["row"].tolist()
        channels += batch["channel"].tolist()
    rows = np.array(rows)
    assert (split_of(seeds[rows], 150, 50) == 0).all()
    assert 0 in channels and 1 in channels  # both outputs of two-output pairs
    val = held_out_set(store_path, cfg)
    assert val["series"].shape == (256, 64)
    assert (split_of(seeds[val["row"].numpy()], 150, 50) == 1).all()


def test_plain_windows_are_raw_contiguous_slices_of_the_stored_outputs(store_path):
    store = s2store.open(store_path)
    y = store.read(0, len(store), ["y"])["y"]
    batch = next(iter(S2WindowStream(store_path, tiny_cfg(crop_prob=0.0))))
    for window, row, channel in zip(batch["series"], batch["row"], batch["channel"], strict=True):
        stored = y[int(row), int(channel)]  # (L,), raw: the model normalises
        starts = [o for o in range(len(stored) - 63) if np.array_equal(stored[o : o + 64], window)]
        assert starts, int(row)


def test_ranks_read_disjoint_chunks_and_a_resumed_loader_skips_exactly(store_path):
    cfg = tiny_cfg(batch_size=16)
    per_rank = []
    for rank in (0, 1):
        stream = iter(S2WindowStream(store_path, cfg, rank=rank, world_size=2))
        per_rank.append({int(r) for _ in range(30) for r in next(stream)["row"]})
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]

    cfg = tiny_cfg(num_workers=2)
    fresh = iter(make_loader(store_path, cfg))
    first = [next(fresh) for _ in range(8)]
    for start in (3, 4, 5):  # any step, also one that is not a multiple of the workers
        resumed = iter(make_loader(store_path, cfg, start_batch=start))
        for expected in first[start:]:
            got = next(resumed)
            assert torch.equal(got["row"], expected["row"]), start
            assert torch.equal(got["series"], expected["series"]), start


def test_use_inputs_adds_input_windows_without_symbol(store_path):
    batch = next(iter(S2WindowStream(store_path, tiny_cfg(use_inputs=True, batch_size=256))))
    no_symbol = ~batch["has_symbol"]
    assert no_symbol.any() and batch["has_symbol"].any()
    assert (batch["tokens"][no_symbol] == 0).all() and (batch["expr_id"][no_symbol] == -1).all()


def test_tiny_run_learns_and_keeps_last_and_best_checkpoints(store_path, tmp_path):
    cfg = tiny_cfg(steps=400, val_every=200, ckpt_every=200, log_every=1)
    final = run(cfg, store_path, str(tmp_path), device="cpu", progress=False)
    lines = read_metrics(tmp_path)
    train = [m for m in lines if "loss" in m]
    val = [m for m in lines if "val_loss" in m]
    assert [m["step"] for m in train] == list(range(1, 401))
    first = np.mean([m["loss"] for m in train[:40]])
    last = np.mean([m["loss"] for m in train[-40:]])
    assert last < first - 0.5, (first, last)
    for part in ("mts", "mlm", "t2s", "s2t", "inst", "rec"):
        assert np.mean([m[part] for m in train[-40:]]) < np.mean([m[part] for m in train[:40]])
    assert [m["step"] for m in val] == [200, 400]
    assert final["val_gallery"] == 256
    chance_top10 = 10 / 256  # 256 held-out candidates
    assert (final["val_t2s_top10"] + final["val_s2t_top10"]) / 2 > 2.5 * chance_top10, final
    for name in ("val_mts", "val_mlm", "val_mlm_acc", "val_t2s_top1", "val_s2t_top1", "val_inst"):
        assert name in final
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    last_ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    best_ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    assert last_ckpt["step"] == 400 and best_ckpt["step"] in (200, 400)
    assert best_ckpt["best_val_loss"] == min(m["val_loss"] for m in val)
    saved = PretrainConfig.from_dict(last_ckpt["config"])
    assert saved == cfg.replace(max_tokens=saved.max_tokens) and saved.max_tokens % 8 == 0
    assert PretrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == saved
    context = json.loads((tmp_path / "run.json").read_text())
    assert 0 <= context["symbols_truncated"] <= 0.01 and context["world_size"] == 1

    encoder = load_encoder(tmp_path / "last.pt")
    series = np.random.default_rng(0).normal(size=(5, 100)).astype(np.float32)
    emb = encoder.embed(series)
    assert emb.shape == (5, 64) and np.isfinite(emb).all()  # [CLS] and patch mean: 2 x 32
    weights = last_ckpt["model"]["series.frontend.proj.weight"]
    assert torch.equal(encoder.backbone.frontend.proj.weight, weights)

    with pytest.raises(ValueError, match="already holds a run"):
        run(cfg, store_path, str(tmp_path), device="cpu", progress=False)


JOB = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from s2gen.pretrain import run
from tests.test_pretrain_run import tiny_cfg
store, out, kill_at, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
def hook(batch, step, model):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real kill
    return batch
cfg = tiny_cfg(steps=12, val_every=4, ckpt_every=4, buffer_chunks=1, num_workers=2)
run(cfg, store, out, resume=resume, device="cpu", progress=False, batch_hook=hook)
"""


def _job(store_path, out, kill_at=-1, resume=False) -> int:
    args = [sys.executable, "-c", JOB, store_path, str(out), str(kill_at), str(int(resume))]
    return subprocess.run(args, cwd=ROOT, capture_output=True, timeout=600).returncode


def test_resume_after_sigkill_equals_an_uninterrupted_run_exactly(store_path, tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _job(store_path, whole) == 0
    assert _job(store_path, broken, kill_at=9) == -signal.SIGKILL  # step 9: 9 % 2 workers = 1
    saved = torch.load(broken / "last.pt", weights_only=True)
    assert saved["step"] == 8
    assert max(m["step"] for m in read_metrics(broken)) == 9  # logged beyond the checkpoint
    assert _job(store_path, broken, resume=True) == 0

    a, b = read_metrics(whole), read_metrics(broken)
    assert [m["step"] for m in a] == [m["step"] for m in b]
    times = [m["train_s"] for m in b if "train_s" in m]  # one per step (log_every=1)
    assert len(times) == 12 and times == sorted(times)
    assert times[7] <= saved["train_s"] <= times[8]  # the resumed part starts where it stopped
    for ma, mb in zip(a, b, strict=True):
        for wall_clock in ("samples_per_s", "train_s"):
            ma.pop(wall_clock, None), mb.pop(wall_clock, None)
        assert ma == mb, ma["step"]
    end_a = torch.load(whole / "last.pt", weights_only=True)
    end_b = torch.load(broken / "last.pt", weights_only=True)
    for name, value in end_a["model"].items():  # weights, momentum copies and queues
        assert torch.equal(value, end_b["model"][name]), name
    state_a, state_b = end_a["optimizer"]["state"], end_b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        for name, value in state_a[key].items():
            assert torch.equal(value, state_b[key][name]), (key, name)


def test_a_non_finite_loss_stops_before_the_weights_change(store_path, tmp_path):
    seen = {}

    def poison(batch, step, model):
        seen["model"] = model
        if step == 2:
            seen["before"] = {
                k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
            }
            batch = {**batch, "series": batch["series"].clone()}
            batch["series"][0, 5] = float("nan")
        return batch

    cfg = tiny_cfg(steps=5, val_every=5, ckpt_every=1)
    with pytest.raises(FloatingPointError, match="non-finite loss or gradient at step 2"):
        run(cfg, store_path, str(tmp_path), device="cpu", progress=False, batch_hook=poison)
    after = dict(seen["model"].named_parameters())
    for name, value in seen["before"].items():
        assert torch.equal(after[name], value), name  # the poisoned step trained nothing
    assert all(torch.isfinite(p).all() for p in after.values())
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2


def test_resume_refuses_another_world_size(store_path, tmp_path):
    from s2gen.pretrain.train import _check_resume

    cfg = tiny_cfg()
    with pytest.raises(ValueError, match="trained on 2 process"):
        _check_resume(cfg, cfg, {"world_size": 2}, 1)
    _check_resume(cfg, cfg.replace(steps=cfg.steps * 2), {"world_size": 1}, 1)  # extend: fine


def test_batch_hook_rows_without_symbol_stay_out_of_queue_and_losses(store_path, tmp_path):
    seen = {}

    def drop_symbols(batch, step, model):
        batch["has_symbol"] = batch["has_symbol"].clone()
        batch["has_symbol"][:16] = False  # (their tokens stay; the model must ignore them)
        seen.setdefault("dropped", set()).update(batch["expr_id"][:16].tolist())
        seen.setdefault("kept", set()).update(batch["expr_id"][16:].tolist())
        seen["model"] = model
        return {**batch, "metrics": {"hook_rows": 16.0}}

    cfg = tiny_cfg(steps=3, val_every=3, ckpt_every=3, queue_size=1000)
    run(cfg, store_path, str(tmp_path), device="cpu", progress=False, batch_hook=drop_symbols)
    queued = set(seen["model"].objectives["s2"].queue_ids.tolist()) - {-1}
    assert queued == seen["kept"] and not (seen["dropped"] - seen["kept"]) & queued
    assert len(queued) > 0
    assert all(m["hook_rows"] == 16.0 for m in read_metrics(tmp_path) if "loss" in m)


def test_errors_name_the_fix(store_path, tmp_path):
    with pytest.raises(ValueError, match="window=128 exceeds"):
        run(tiny_cfg(window=128), store_path, str(tmp_path / "a"), device="cpu", progress=False)
    with pytest.raises(ValueError, match="cannot resume"):
        cfg = tiny_cfg(steps=1, val_every=1, ckpt_every=1)
        run(cfg, store_path, str(tmp_path / "b"), device="cpu", progress=False)
        run(cfg.replace(lr=1e-4), store_path, str(tmp_path / "b"), resume=True, device="cpu")


def test_cli_pretrain_then_embed(store_path, tmp_path):
    out = tmp_path / "run"
    args = ["--data", store_path, "--out", str(out), "--preset", "ci", "--steps", "2"]
    args += ["--batch-size", "16", "--window", "64", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(pretrain, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pretrained 2 steps" in result.output and (out / "last.pt").exists()
    again = CliRunner().invoke(pretrain, args)
    assert again.exit_code != 0 and "--resume" in again.output
    resumed = CliRunner().invoke(pretrain, [*args, "--resume"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output

    series = np.random.default_rng(0).normal(size=(3, 50))
    np.savetxt(tmp_path / "in.csv", series, delimiter=",")
    result = CliRunner().invoke(
        embed,
        ["--checkpoint", str(out / "last.pt"), "--input", str(tmp_path / "in.csv")]
        + ["--out", str(tmp_path / "emb.npy"), "--device", "cpu"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    emb = np.load(tmp_path / "emb.npy")
    assert emb.shape == (3, 128)
    np.testing.assert_allclose(emb, load_encoder(out / "last.pt").embed(series), atol=1e-5)
    result = CliRunner().invoke(
        embed,
        ["--checkpoint", str(out / "last.pt"), "--input", str(tmp_path / "in.csv")]
        + ["--out", str(tmp_path / "kept.npy"), "--device", "cpu", "--resize", "none"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    kept = load_encoder(out / "last.pt").embed(series, resize="none")
    np.testing.assert_allclose(np.load(tmp_path / "kept.npy"), kept, atol=1e-5)
    assert np.abs(kept - emb).max() > 1e-3  # 50 points resampled to 64 vs left-padded
    bad = CliRunner().invoke(
        embed,
        ["--checkpoint", str(out / "last.pt"), "--input", str(tmp_path / "in.csv")]
        + ["--out", str(tmp_path / "emb.txt")],
    )
    assert bad.exit_code != 0 and ".npy or .csv" in bad.output
