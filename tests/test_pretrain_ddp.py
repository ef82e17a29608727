"""`s2gen.pretrain.run` under DDP: 2 gloo processes on CPU keep parameters in sync, and the
`torchrun -m s2gen pretrain` command itself trains exactly like an `mp.spawn` run."""

import json
import os
import socket
import subprocess
import sys

import torch
import torch.multiprocessing as mp

from tests.test_pretrain_run import ROOT, TINY, make_store, tiny_cfg

STEPS = 4
SETTINGS = dict(steps=STEPS, val_every=STEPS, ckpt_every=STEPS, queue_size=256)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, store_path: str, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    from s2gen.pretrain import run

    seen = {}

    def record(batch, step, model):
        seen.setdefault("rows", []).append(batch["row"].clone())
        if step == 0:
            seen["init"] = {k: v.detach().clone() for k, v in model.named_parameters()}
        if step == STEPS - 1:  # after STEPS - 1 synchronised updates
            seen["params"] = {k: v.detach().clone() for k, v in model.named_parameters()}
            seen["queue"] = model.objectives["s2"].queue_ids.clone()
        return batch

    run(tiny_cfg(**SETTINGS), store_path, out_dir, device="cpu", progress=False, batch_hook=record)
    seen["returned_after_save"] = os.path.exists(os.path.join(out_dir, "last.pt"))
    torch.save(seen, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_process_gloo_run_keeps_parameters_in_sync(tmp_path_factory, tmp_path):
    store_path = make_store(tmp_path_factory)
    spawned = tmp_path / "spawned"
    mp.spawn(_worker, args=(2, _free_port(), store_path, str(spawned)), nprocs=2, join=True)
    r0 = torch.load(spawned / "rank0.pt", weights_only=True)
    r1 = torch.load(spawned / "rank1.pt", weights_only=True)
    rows0, rows1 = torch.cat(r0["rows"]), torch.cat(r1["rows"])
    assert not set(rows0.tolist()) & set(rows1.tolist())  # each rank its own data
    assert torch.load(spawned / "last.pt", weights_only=True)["step"] == STEPS  # rank 0 wrote
    assert r0["returned_after_save"] and r1["returned_after_save"]  # ranks leave run together
    changed = 0
    for name, p0 in r0["params"].items():
        torch.testing.assert_close(p0, r1["params"][name], rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(r0["init"][name], r1["init"][name], rtol=0, atol=0, msg=name)
        changed += not torch.equal(p0, r0["init"][name])
    assert changed > 10  # training moved the (shared) parameters
    assert torch.equal(r0["queue"], r1["queue"])  # queues filled from both ranks alike
    assert (r0["queue"] >= 0).sum() == 2 * 32 * (STEPS - 1)

    # the command users run, under torchrun, trains exactly like the spawned processes
    settings = tmp_path / "tiny.json"
    settings.write_text(json.dumps({**TINY, **SETTINGS}))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", str(_free_port()), "-m", "s2gen", "pretrain"]
    command += ["--data", store_path, "--out", str(tmp_path / "torchrun"), "--preset", "ci"]
    command += ["--config", str(settings), "--device", "cpu", "--threads", "1", "--quiet"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    a = torch.load(spawned / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "torchrun" / "last.pt", weights_only=True)
    assert a["config"] == b["config"] and b["world_size"] == 2
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=0, atol=1e-6, msg=name)
