"""`s2gen.pretrain.run` under DDP: 2 processes with gloo on CPU keep parameters in sync."""

import os
import socket

import torch
import torch.multiprocessing as mp

from tests.test_pretrain_run import make_store, tiny_cfg

STEPS = 4


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
            seen["queue"] = model.queue_ids.clone()
        return batch

    cfg = tiny_cfg(steps=STEPS, val_every=STEPS, ckpt_every=STEPS, queue_size=256)
    run(cfg, store_path, out_dir, device="cpu", progress=False, batch_hook=record)
    torch.save(seen, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_process_gloo_run_keeps_parameters_in_sync(tmp_path_factory, tmp_path):
    store_path = make_store(tmp_path_factory)
    mp.spawn(_worker, args=(2, _free_port(), store_path, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    rows0, rows1 = torch.cat(r0["rows"]), torch.cat(r1["rows"])
    assert not set(rows0.tolist()) & set(rows1.tolist())  # each rank its own data
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == STEPS  # rank 0 wrote
    changed = 0
    for name, p0 in r0["params"].items():
        torch.testing.assert_close(p0, r1["params"][name], rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(r0["init"][name], r1["init"][name], rtol=0, atol=0, msg=name)
        changed += not torch.equal(p0, r0["init"][name])
    assert changed > 10  # training moved the (shared) parameters
    assert torch.equal(r0["queue"], r1["queue"])  # queues filled from both ranks alike
    assert (r0["queue"] >= 0).sum() == 2 * 32 * (STEPS - 1)
