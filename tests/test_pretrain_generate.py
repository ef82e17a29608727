"""Fresh pairs on the fly (issue 18): ``--generate`` trains on generated pairs, each once.

A generated source gives the samples a store of its config gives (same rows, splits, windows,
tokens, held-out sets); its stream reads every chunk once, finds any batch from the rows'
seeds alone, records the rows it trained on, resumes exactly after a kill, and any batch of a
run is regenerated bit for bit.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.config import SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.pairs import channel_counts, generate_batch
from s2gen.kernels.seeds import row_seeds
from s2gen.pretrain import run
from s2gen.pretrain import stream as stream_module
from s2gen.pretrain.cli import pretrain
from s2gen.pretrain.data import split_of
from s2gen.pretrain.generated import GeneratorSource, preset_config
from s2gen.pretrain.sources import StoreSource
from s2gen.pretrain.stream import S2WindowStream, batch_at, held_out_set
from tests.test_pretrain_ddp import _free_port
from tests.test_pretrain_run import ROOT, make_store, read_metrics, tiny_cfg

torch.set_num_threads(1)
CHUNK = 128  # the test store's chunk_rows


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory)


@pytest.fixture(scope="module")
def config(store_path) -> GenerateConfig:
    """The generation config of the test store (L = 64, up to 2 outputs, fast families)."""
    return s2store.open(store_path).config


@pytest.fixture(scope="module")
def config_file(config, tmp_path_factory) -> str:
    """That config as a `s2gen generate --config` file (its n is left aside by --generate)."""
    path = tmp_path_factory.mktemp("generate") / "tiny.json"
    path.write_text(json.dumps({**config.to_dict(), "n": 1000, "chunk_rows": 64}))
    return str(path)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        equal = torch.equal if isinstance(a[key], torch.Tensor) else np.array_equal
        assert equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "settings, outputs",
    [
        ({}, {1}),
        ({"max_input_dim": 3, "max_output_dim": 4}, {1, 2, 3, 4}),
        ({"expressions": ("x_0 + x_1", "Abs(x_1)"), "min_input_dim": 2, "max_input_dim": 3}, {2}),
        ({"graph": True, "max_input_dim": 2, "max_output_dim": 2, "max_nodes": 8}, {1, 2}),
    ],
)
def test_channel_counts_are_those_of_the_generated_pairs(settings, outputs):
    settings = {"length": 32, "arma_burn_in": 16, **settings}
    expressions = settings.pop("expressions", ())
    if expressions:
        config = GenerateConfig.for_expressions(expressions, **settings)
    else:
        config = GenerateConfig.from_dict(settings)
    seeds = row_seeds(5, 0, 300)
    batch = generate_batch(config, seeds)
    n_in, n_out = channel_counts(config, seeds)
    assert np.array_equal(n_in, batch.n_in) and np.array_equal(n_out, batch.n_out)
    assert set(n_out.tolist()) == outputs
    assert set(n_in.tolist()) == set(range(config.min_input_dim, config.max_input_dim + 1))


def test_presets_are_the_stores_of_the_transfer_grid():
    assert preset_config("sarima") == GenerateConfig(length=512)  # generate's default mix
    assert preset_config("paper") == GenerateConfig(length=512, sampler_weights=())
    assert preset_config("reference") == GenerateConfig(
        length=512, sampler_weights=SAMPLER_PRESETS["reference"]
    )
    with pytest.raises(ValueError, match="no preset"):
        preset_config("fast")


@pytest.mark.parametrize("use_inputs", [False, True])
def test_generated_chunks_and_held_out_sets_are_the_rows_of_a_store(store_path, config, use_inputs):
    cfg = tiny_cfg(use_inputs=use_inputs)
    generated = GeneratorSource(config, cfg, "tiny", chunk_rows=CHUNK)
    stored = StoreSource(store_path, cfg)
    for index in (0, 7, 23):  # the store's chunks: the same rows, windows and tokens
        for split in (0, 1, 2):
            a = generated.chunk(index, 0, split, np.random.default_rng([index, split]))
            b = stored.chunk(index, 0, split, np.random.default_rng([index, split]))
            assert_same(a, b)
        counted = generated.sample_counts(np.array([index]))[0]
        assert counted == len(generated.chunk(index, 0, 0, None)["row"])
    for split, limit in ((1, 256), (2, 100)):
        assert_same(generated.held_out(split, limit), stored.held_out(split, limit))
    assert_same(held_out_set([generated], cfg), held_out_set(store_path, cfg))
    assert generated.vocabulary == stored.vocabulary
    assert GeneratorSource(config, cfg.replace(val_permille=0), "t").held_out(1, 10) is None


def test_a_fresh_stream_reads_every_chunk_once_in_order_and_ranks_are_disjoint(config):
    cfg = tiny_cfg(batch_size=16)
    source = GeneratorSource(config, cfg, "tiny", chunk_rows=32)
    seen = []
    for rank in (0, 1):
        batches = iter(S2WindowStream([source], cfg, rank=rank, world_size=2))
        samples = [x for _ in range(40) for x in _samples(next(batches))]
        chunks = np.array([r // 32 for r, _ in samples])
        assert (chunks % 2 == rank).all() and (np.diff(chunks) >= 0).all()  # its chunks, in order
        for chunk in np.unique(chunks)[:-1]:  # every chunk read is used up, each sample once
            part = source.chunk(int(chunk), 0, 0, None)
            assert sorted(x for x in samples if x[0] // 32 == chunk) == sorted(_samples(part))
        seen += samples
    assert len(set(seen)) == len(seen) == 2 * 40 * 16
    rows = np.array([r for r, _ in seen])
    assert (split_of(row_seeds(config.seed, 0, rows.max() + 1)[rows], 150, 50) == 0).all()


def _samples(batch) -> list[tuple[int, int]]:
    """(row, channel) of each sample of a batch or chunk."""
    return [(int(r), int(c)) for r, c in zip(batch["row"], batch["channel"], strict=True)]


def test_any_batch_is_found_without_generating_the_ones_before_it(config, monkeypatch):
    monkeypatch.setattr(stream_module, "LOCATE_CHUNKS", 2)  # cross the counting blocks too
    cfg = tiny_cfg(batch_size=24, use_inputs=True)
    stream = S2WindowStream([GeneratorSource(config, cfg, "tiny", chunk_rows=16)], cfg)
    batches = stream._fresh_batches(1, 3, 0)
    first = [next(batches) for _ in range(30)]
    for b in (1, 5, 6, 17, 29):
        assert_same(next(stream._fresh_batches(1, 3, b)), first[b])


def test_a_generated_stream_streams_alone(store_path, config):
    cfg = tiny_cfg()
    with pytest.raises(ValueError, match="streams alone"):
        S2WindowStream([GeneratorSource(config, cfg, "tiny"), store_path], cfg)
    with pytest.raises(ValueError, match="exceeds the generated series' length 64"):
        GeneratorSource(config, tiny_cfg(window=128), "tiny")
    with pytest.raises(ValueError, match="leave no rows to train on"):
        GeneratorSource(config, tiny_cfg(val_permille=500, reference_permille=500), "tiny")


def test_a_generated_run_records_its_rows_and_every_batch_is_made_again(config, tmp_path):
    seen = []

    def record(batch, step, model):
        seen.append({k: v.clone() for k, v in batch.items()})
        return batch

    cfg = tiny_cfg(steps=6, val_every=3, ckpt_every=3)
    source = GeneratorSource(config, cfg, "tiny")
    run(cfg, [source], str(tmp_path), device="cpu", progress=False, batch_hook=record)
    context = json.loads((tmp_path / "run.json").read_text())
    assert context["generate"] == source.record() and context["data"] == ["tiny"]
    rows = torch.cat([b["row"] for b in seen])
    expected = {"rank": 0, "first_row": int(rows.min()), "last_row": int(rows.max())}
    assert context["rows"] == [expected]
    assert len({x for b in seen for x in _samples(b)}) == 6 * 32  # each sample once
    for b in range(6):
        assert_same(batch_at(tmp_path, b), seen[b])
    with pytest.raises(ValueError, match="the run had 1 process"):
        batch_at(tmp_path, 0, rank=1)


JOB = """
import os, signal, sys
import numpy as np, torch
torch.set_num_threads(1)
from s2gen.pretrain import run
from s2gen.pretrain.cli import generated_source
from tests.test_pretrain_run import tiny_cfg
config, out, kill_at, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
def hook(batch, step, model):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real kill
    np.savez(os.path.join(out, f"batch{step}.npz"), **{k: v.numpy() for k, v in batch.items()})
    return batch
cfg = tiny_cfg(steps=10, val_every=4, ckpt_every=4, num_workers=2)
run(cfg, [generated_source(config, cfg)], out, resume=resume, device="cpu", progress=False,
    batch_hook=hook)
"""


def _job(config_file, out, kill_at=-1, resume=False) -> int:
    args = [sys.executable, "-c", JOB, config_file, str(out), str(kill_at), str(int(resume))]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, timeout=600)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr.decode()[-3000:]
    return done.returncode


def test_generated_run_resumes_after_sigkill_exactly_with_two_generator_workers(
    config_file, tmp_path
):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _job(config_file, whole) == 0
    assert _job(config_file, broken, kill_at=7) == -signal.SIGKILL  # 7 % 2 workers = 1
    assert torch.load(broken / "last.pt", weights_only=True)["step"] == 4
    assert _job(config_file, broken, resume=True) == 0

    a, b = read_metrics(whole), read_metrics(broken)
    assert [m["step"] for m in a] == [m["step"] for m in b]
    for ma, mb in zip(a, b, strict=True):
        for wall_clock in ("samples_per_s", "train_s"):
            ma.pop(wall_clock, None), mb.pop(wall_clock, None)
        assert ma == mb, ma["step"]
    end_a = torch.load(whole / "last.pt", weights_only=True)
    end_b = torch.load(broken / "last.pt", weights_only=True)
    for name, value in end_a["model"].items():
        assert torch.equal(value, end_b["model"][name]), name
    assert end_a["rows"] == end_b["rows"]
    assert json.loads((whole / "run.json").read_text()) == json.loads(
        (broken / "run.json").read_text()
    )
    for step in range(10):  # what the workers gave each step is what batch_at makes again
        trained = {k: torch.from_numpy(v) for k, v in np.load(whole / f"batch{step}.npz").items()}
        assert_same(batch_at(whole, step), trained)
        assert_same(batch_at(broken, step), trained)


def _ddp_worker(rank: int, world: int, port: int, config_file: str, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    from s2gen.pretrain.cli import generated_source

    rows = []

    def record(batch, step, model):
        rows.append(batch["row"].clone())
        return batch

    cfg = tiny_cfg(steps=4, val_every=4, ckpt_every=2)  # spans gathered at steps 2 and 4
    run(cfg, [generated_source(config_file, cfg)], out_dir, device="cpu", progress=False,
        batch_hook=record)  # fmt: skip
    torch.save(rows, os.path.join(out_dir, f"rows{rank}.pt"))


def test_two_ranks_record_their_own_rows_and_batches(config_file, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), config_file, str(tmp_path)), nprocs=2, join=True)
    recorded = json.loads((tmp_path / "run.json").read_text())["rows"]
    for rank in (0, 1):
        rows = torch.load(tmp_path / f"rows{rank}.pt", weights_only=True)
        everything = torch.cat(rows)
        assert recorded[rank] == {
            "rank": rank,
            "first_row": int(everything.min()),
            "last_row": int(everything.max()),
        }
        assert ((everything // 256) % 2 == rank).all()  # its own chunks
        for b in (0, 3):
            assert torch.equal(batch_at(tmp_path, b, rank=rank)["row"], rows[b])


def test_cli_generate_runs_resumes_and_refuses_bad_combinations(config_file, store_path, tmp_path):
    out = tmp_path / "run"
    base = ["--out", str(out), "--preset", "ci", "--batch-size", "16", "--window", "64"]
    base += ["--device", "cpu", "--quiet"]
    args = [*base, "--generate", config_file, "--steps", "2"]
    result = CliRunner().invoke(pretrain, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    context = json.loads((out / "run.json").read_text())
    assert (
        GenerateConfig.from_dict(context["generate"]["config"]) == s2store.open(store_path).config
    )
    resumed = CliRunner().invoke(pretrain, [*args[:-1], "3", "--resume"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3

    def error(*extra) -> str:
        result = CliRunner().invoke(pretrain, [*base, *extra])
        assert result.exit_code != 0
        return result.output

    assert "not both" in error("--generate", "paper", "--data", store_path)
    assert "not neither" in error()
    assert "no preset (sarima, paper, reference, all) and no file" in error("--generate", "fast")
    assert "does not run with --generate" in error("--generate", "paper", "--oats", "g.pt")
    other = error("--generate", "paper", "--resume")  # the run above was on the config file
    assert "is resumed with --generate paper" in other, other
    old = [*base[:1], str(tmp_path / "old"), *base[2:], "--steps", "1"]
    trained = CliRunner().invoke(pretrain, [*old, "--generate", "paper"])  # the old default
    assert trained.exit_code == 0, trained.output
    plain = tmp_path / "plain.toml"  # no sampler_weights: today's default, SARIMA pairs
    plain.write_text("length = 512\n")
    resumed = CliRunner().invoke(pretrain, [*old, "--generate", str(plain), "--resume"])
    assert resumed.exit_code != 0 and "add sampler_weights = {}" in resumed.output, resumed.output
    bad = tmp_path / "bad.toml"
    bad.write_text("length = 1\n")
    assert "bad.toml: length=1 is invalid" in error("--generate", str(bad))


THREADS_AFTER_GENERATING = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
assert torch.get_num_threads() == int(sys.argv[1])  # read before Numba's pool starts: reset then
from s2gen.pretrain import PretrainConfig
from s2gen.pretrain.generated import GeneratorSource, preset_config
source = GeneratorSource(preset_config("paper"), PretrainConfig.preset("ci"), "paper")
source.symbol_lengths()  # the process's first Numba parallel kernel launches its thread pool
import numba
print(numba.threading_layer(), torch.get_num_threads())
"""


def test_generating_in_the_training_process_keeps_torch_threads():
    """Numba's OpenMP pool shares torch's libgomp: its launch resets torch's thread count."""
    want = (os.cpu_count() or 1) + 1  # no team Numba launches has this size
    script = [sys.executable, "-c", THREADS_AFTER_GENERATING, str(want)]
    done = subprocess.run(script, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    layer, threads = done.stdout.split()[-2:]
    if layer != "omp":  # tbb and workqueue pools keep to themselves
        pytest.skip(f"Numba runs its {layer} threading layer here, not OpenMP")
    assert int(threads) == want
