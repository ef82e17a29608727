"""Memory estimates (s2gen.memory): the refusals, the largest setting that fits, and one
estimate against a measured peak."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s2gen import memory
from s2gen.config import GenerateConfig, StoreConfig
from s2gen.pretrain import PretrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_memory import PRETRAIN_CHILD  # noqa: E402  (the benchmark's measurement, once)

GB = 1e9


def test_largest_fitting_agrees_with_a_linear_search():
    for budget in (0, 5, 17, 99, 1000):
        need = lambda v: 3 * v + v * v // 10  # noqa: E731  (grows with v)
        want = max([v for v in range(1, 200) if need(v) <= budget], default=0)
        assert memory.largest_fitting(need, 1, 199, budget) == want


def test_a_batch_that_does_not_fit_is_refused_with_the_largest_that_does():
    cfg = PretrainConfig.preset("small")
    need = lambda b: memory.pretrain_bytes(cfg.replace(batch_size=b))  # noqa: E731
    available = int(4 * GB)
    with pytest.raises(memory.NotEnoughMemory) as caught:
        memory.check_pretrain(cfg.replace(batch_size=4096), "cpu", available=available)
    message = str(caught.value)
    assert caught.value.parameter == "--batch-size"
    assert message.startswith("--batch-size 4096 needs about ")
    assert "this machine has 4.0 GB available" in message
    fits = int(message.rsplit("--batch-size <= ", 1)[1])
    assert need(fits) <= available < need(fits + 1)
    memory.check_pretrain(cfg.replace(batch_size=fits), "cpu", available=available)


def test_every_local_torchrun_process_needs_its_share(monkeypatch):
    cfg = PretrainConfig.preset("small", batch_size=256)
    one = memory.pretrain_bytes(cfg)
    memory.check_pretrain(cfg, "cpu", available=int(1.5 * one))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(memory.NotEnoughMemory, match="x 2 processes"):
        memory.check_pretrain(cfg, "cpu", available=int(1.5 * one))


def test_a_model_too_large_for_any_batch_says_so():
    cfg = PretrainConfig.preset("base", batch_size=64)
    with pytest.raises(memory.NotEnoughMemory, match="even --batch-size 2 does not fit"):
        memory.check_pretrain(cfg, "cpu", available=int(0.1 * GB))


def test_estimates_grow_with_the_batch_and_the_model():
    small = PretrainConfig.preset("small")
    sizes = [memory.pretrain_bytes(small.replace(batch_size=b)) for b in (2, 64, 512, 4096)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    assert memory.pretrain_bytes(PretrainConfig.preset("base", batch_size=128)) > sizes[1]
    for train in (False, True):
        sizes = [memory.encoder_bytes(small, b, train) for b in (1, 16, 1024)]
        assert sizes == sorted(sizes)
    assert memory.encoder_bytes(small, 256, True) > memory.encoder_bytes(small, 256, False)


def test_generation_shards_beyond_the_limit_are_refused_with_a_layout_that_fits():
    config = GenerateConfig(length=65536, max_input_dim=2, max_output_dim=2)
    with pytest.raises(memory.NotEnoughMemory) as caught:
        memory.check_generation(config, StoreConfig(), workers=1, available=int(100 * GB))
    assert caught.value.parameter == "--shard-rows"
    message = str(caught.value)
    assert "use --shard-rows 512 --chunk-rows 512 or smaller" in message  # a power of two
    assert memory.shard_bytes(config, 512) <= memory.SHARD_LIMIT
    assert memory.shard_bytes(config, 1024) > memory.SHARD_LIMIT
    memory.check_generation(config, StoreConfig(512, 512), workers=1, available=int(100 * GB))


def test_generation_workers_beyond_the_memory_are_refused_or_capped():
    config = GenerateConfig(length=16384)
    layout = StoreConfig(chunk_rows=1024, shard_rows=4096)  # 0.54 GB of x and y a shard
    available = int(3 * GB)
    with pytest.raises(memory.NotEnoughMemory, match="use --workers 2") as caught:
        memory.check_generation(config, layout, workers=8, available=available)
    assert caught.value.parameter == "--workers"
    assert memory.workers_that_fit(config, 4096, 8, available=available) == 2
    assert memory.workers_that_fit(config, 4096, 8, available=int(0.1 * GB)) == 1
    memory.check_generation(config, layout, workers=None, available=1)  # a cluster: size only


def test_available_memory_is_read_from_this_machine():
    available = memory.available_bytes()
    total = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    assert available is not None and available > 0
    assert total is None or available <= total


def test_pretrain_estimate_is_within_a_third_of_a_measured_step():
    """Two real steps of the ci preset at batch 256 in a fresh process (benchmarks/bench_memory.py
    measures a grid; the estimate stays within -10 % .. +20 % there)."""
    settings = json.dumps({"batch_size": 256})
    out = subprocess.run(
        [sys.executable, "-c", PRETRAIN_CHILD, "ci", settings],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])["measured"]
    estimate = memory.pretrain_step_bytes(PretrainConfig.preset("ci", batch_size=256))
    assert 0.75 <= estimate / measured <= 1.35, (estimate, measured)
    assert memory.pretrain_bytes(PretrainConfig.preset("ci", batch_size=256)) > estimate


def test_gpt2_estimates_follow_its_blocks_and_its_base(tmp_path):
    shallow = PretrainConfig.preset("ci", backbone="gpt2", llm_layers=1)
    deep = shallow.replace(llm_layers=8)
    assert memory.encoder_bytes(deep, 64, True) > memory.encoder_bytes(shallow, 64, True)
    assert memory.pretrain_bytes(deep) > memory.pretrain_bytes(shallow)
    (tmp_path / "config.json").write_text(json.dumps({"n_embd": 768, "n_head": 12, "n_layer": 12}))
    based = shallow.replace(backbone_weights=str(tmp_path), llm_layers=24)
    assert memory.series_tower(based) == (768, 3072, 12, 12)  # no deeper than the base
