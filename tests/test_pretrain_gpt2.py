"""The gpt2 backbone on a tiny random GPT-2 (2 blocks, width 64) built here, no files needed:
what trains, what stays frozen, checkpoints without the base, merged adapters, the momentum
copy, base weights from a local folder and its hash, front ends, config checks."""

import copy
import hashlib
import json
import os

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download (the code passes local_files_only too)

from s2gen.pretrain.backbones import build_backbone, instance_state  # noqa: E402
from s2gen.pretrain.backbones.frontends import MultiScaleEmbedding  # noqa: E402
from s2gen.pretrain.backbones.gpt2 import tensors_sha256  # noqa: E402
from s2gen.pretrain.config import PretrainConfig  # noqa: E402
from s2gen.pretrain.encoder import SeriesEncoder, load_encoder  # noqa: E402
from s2gen.pretrain.model import Pretrainer  # noqa: E402
from s2gen.pretrain.objectives.s2 import momentum_update  # noqa: E402
from s2gen.pretrain.symbols import pretraining_vocabulary  # noqa: E402
from s2gen.pretrain.train import param_groups, run  # noqa: E402
from s2gen.symbols.vocabulary import vocabulary  # noqa: E402

torch.set_num_threads(1)
GPT2 = dict(
    backbone="gpt2",
    window=64,
    patch=8,
    d_model=64,
    n_heads=4,
    d_ff=128,
    llm_layers=2,
    sym_d_model=16,
    sym_heads=2,
    sym_d_ff=32,
    sym_layers=1,
    max_tokens=24,
    embed_dim=8,
    queue_size=32,
)


def gpt2_cfg(**overrides) -> PretrainConfig:
    return PretrainConfig.preset("ci", **{**GPT2, **overrides})


def backbone(seed=0, **overrides):
    torch.manual_seed(seed)
    return build_backbone(gpt2_cfg(**overrides))


def trainable(module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def train_steps(model, steps=5, seed=0):
    """A few AdamW steps (the pretraining loop's groups) on random targets; model: (B, L) ->."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 64, generator=g), torch.randn(16, 8, 64, generator=g)
    head = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(param_groups(torch.nn.ModuleList([model, head]), 0.05), lr=1e-2)
    for _ in range(steps):
        loss = (head(model(x)) - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_only_adapters_front_end_and_asked_parts_train():
    b = backbone()
    names = trainable(b)
    assert {"mask_token", "frontend.proj.weight", "stats_proj.weight"} <= names
    lora = {n for n in names if "lora_" in n}
    assert len(lora) == 4  # lora_A and lora_B of c_attn in 2 blocks
    assert names - lora == {
        "mask_token",
        "frontend.proj.weight",
        "frontend.proj.bias",
        "stats_proj.weight",
        "stats_proj.bias",
    }
    frozen = set(b.frozen)
    assert "llm.h.0.attn.c_attn.base_layer.weight" in frozen and "llm.wpe.weight" in frozen
    assert frozen.isdisjoint(names)
    n_lora = sum(b.get_parameter(n).numel() for n in lora)
    assert n_lora == 2 * 8 * (64 + 3 * 64)  # r (d_in + d_out) per block, r = 8

    asked = trainable(backbone(train_norms=True, train_pos=True, lora_targets="c_attn,c_fc"))
    assert "llm.wpe.weight" in asked and "llm.ln_f.weight" in asked
    assert {"llm.h.1.ln_1.bias", "llm.h.1.ln_2.weight"} <= asked
    assert "llm.h.0.mlp.c_fc.lora_A.default.weight" in asked
    assert not any(n.startswith("llm.h.") and "lora_" not in n and ".ln_" not in n for n in asked)


def test_frozen_base_is_bit_identical_after_training_and_trained_parts_move():
    b = backbone(train_norms=True)
    before = {n: p.detach().clone() for n, p in b.named_parameters()}
    train_steps(b)
    for name, p in b.named_parameters():
        if name in b.frozen:
            assert torch.equal(p, before[name]), name
    moved = [n for n in trainable(b) if not torch.equal(b.get_parameter(n), before[n])]
    assert {"llm.h.0.attn.c_attn.lora_B.default.weight", "llm.h.1.ln_1.weight"} <= set(moved)
    assert "frontend.proj.weight" in moved


def test_state_dict_leaves_out_the_base_and_round_trips_to_identical_outputs():
    b = backbone()
    train_steps(b)
    state = b.state_dict()
    assert not any(k.startswith("llm.") and "lora_" not in k for k in state)
    assert state["_extra_state"]["base"] == b.base
    saved = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
    assert saved == sum(p.numel() for p in b.parameters() if p.requires_grad)
    again = backbone(seed=5)  # other adapters and front end, the same random base (cfg.seed)
    x = torch.randn(4, 64)
    again.eval(), b.eval()
    assert not torch.equal(again(x), b(x))
    again.load_state_dict(state)
    assert torch.equal(again(x, stats=torch.ones(4, 2)), b(x, stats=torch.ones(4, 2)))


def test_a_load_onto_another_base_is_refused_with_the_expected_hash():
    b = backbone()
    torch.manual_seed(0)
    other = build_backbone(gpt2_cfg(seed=1))  # the random base is drawn from cfg.seed
    assert other.base["sha256"] != b.base["sha256"]
    with pytest.raises(ValueError, match=b.base["sha256"]) as error:
        other.load_state_dict(b.state_dict())
    assert "random base from seed 0" in str(error.value)


def test_merged_adapters_give_the_same_outputs_and_the_base_comes_back_exactly():
    b = backbone(lora_targets="c_attn,c_proj,c_fc").eval()
    with torch.no_grad():  # nonzero adapters (lora_B starts at zero)
        for name, p in b.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    base = {n: b.get_parameter(n).detach().clone() for n in b.frozen}
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unmerged = b(x)
        with b.merged():
            weight = b.get_parameter("llm.h.0.attn.c_attn.base_layer.weight")
            assert not torch.equal(weight, base["llm.h.0.attn.c_attn.base_layer.weight"])
            merged = b(x)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert (merged - unmerged).abs().max() > 0  # the merged path really ran
    assert all(torch.equal(b.get_parameter(n), t) for n, t in base.items())


def test_deepcopy_shares_the_frozen_base_and_copies_the_rest():
    b = backbone()
    twin = copy.deepcopy(b)
    for name in b.frozen:
        assert twin.get_parameter(name) is b.get_parameter(name)
    for name in trainable(b):
        assert twin.get_parameter(name).data_ptr() != b.get_parameter(name).data_ptr()
    assert twin.state_dict().keys() == b.state_dict().keys()  # its hooks act on the copy
    twin.load_state_dict(b.state_dict())


def test_s2_pretraining_with_the_gpt2_backbone_steps_and_keeps_one_base():
    torch.manual_seed(0)
    model = Pretrainer(gpt2_cfg(), pretraining_vocabulary(vocabulary()))
    online, ema = model.series, model.objectives["s2"].series_m
    shared = [n for n in online.frozen if online.get_parameter(n) is ema.get_parameter(n)]
    assert shared == list(online.frozen)  # one base in memory, not two
    g = torch.Generator().manual_seed(0)
    batch = {
        "series": torch.randn(8, 64, generator=g).cumsum(1),
        "tokens": torch.randint(5, 40, (8, 24), generator=g),
        "has_symbol": torch.ones(8, dtype=torch.bool),
        "expr_id": torch.arange(8),
    }
    frozen = {n: online.get_parameter(n).clone() for n in online.frozen}
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    for step in range(2):
        losses = model.losses(batch, 0.4, torch.Generator().manual_seed(step))
        assert {"mts", "mlm", "itc", "inst", "rec"} <= set(losses)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert all(torch.equal(online.get_parameter(n), t) for n, t in frozen.items())
    lora = "llm.h.0.attn.c_attn.lora_A.default.weight"
    assert not torch.equal(ema.get_parameter(lora), online.get_parameter(lora))
    momentum_update(online, ema, 0.0)  # m = 0 copies the trained part, leaves the base
    assert torch.equal(ema.get_parameter(lora), online.get_parameter(lora))
    state = model.state_dict()
    assert not any("base_layer" in k or "wpe" in k for k in state)
    again = Pretrainer(gpt2_cfg(), pretraining_vocabulary(vocabulary()))
    again.load_state_dict(state)
    hidden = online(torch.randn(2, 64))
    assert instance_state(online, hidden).shape == (2, 64)
    torch.testing.assert_close(instance_state(online, hidden), hidden.mean(1))


def test_pool_is_the_token_mean_or_the_last_token():
    x = torch.randn(3, 64)
    mean = backbone().eval()
    last = backbone(llm_pool="last").eval()
    hidden = mean(x)
    assert hidden.shape == (3, 8, 64) and mean.has_cls is False
    torch.testing.assert_close(mean.pool(hidden), hidden.mean(1))
    torch.testing.assert_close(last.pool(last(x)), last(x)[:, -1])


def _save_tiny_gpt2(folder, seed, layers=3):
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    config = GPT2Config(n_embd=64, n_layer=layers, n_head=4, n_positions=32, vocab_size=50)
    GPT2Model(config).save_pretrained(folder)
    return folder


def _file_hash(folder, layers):
    """The base hash recomputed from the saved file: every tensor but wte and unused blocks."""
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    kept = {
        name: value
        for name, value in tensors.items()
        if not name.startswith("wte.") and not any(f"h.{k}." in name for k in range(layers, 99))
    }
    digest = hashlib.sha256()
    for name in sorted(kept):
        value = np.ascontiguousarray(kept[name], dtype=np.float32)
        digest.update(f"{name}|torch.float32|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest(), kept


def test_weights_from_a_local_folder_are_used_and_hashed(tmp_path):
    folder = _save_tiny_gpt2(tmp_path / "gpt2", seed=3)
    b = backbone(backbone_weights=str(folder))
    expected, tensors = _file_hash(folder, layers=2)
    assert b.base["source"] == "weights" and b.base["sha256"] == expected
    assert (b.base["layers"], b.base["hidden"], b.base["positions"]) == (2, 64, 32)
    assert torch.equal(
        b.get_parameter("llm.h.1.attn.c_attn.base_layer.weight"),
        torch.from_numpy(tensors["h.1.attn.c_attn.weight"]),
    )
    assert b.llm.wte.weight.shape == (1, 64)  # the 50-token embedding is dropped
    assert tensors_sha256([("a", torch.ones(2))]) != tensors_sha256([("a", torch.ones(3))])

    other = backbone(backbone_weights=str(_save_tiny_gpt2(tmp_path / "other", seed=4)))
    with pytest.raises(ValueError, match="pass --backbone-weights") as error:
        other.load_state_dict(b.state_dict())
    assert expected in str(error.value)


def test_bad_weight_folders_are_named(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        backbone(backbone_weights=str(tmp_path))
    folder = _save_tiny_gpt2(tmp_path / "gpt2", seed=0, layers=2)
    with pytest.raises(ValueError, match="llm_layers=3 exceeds the 2 blocks"):
        backbone(backbone_weights=str(folder), llm_layers=3)
    with pytest.raises(ValueError, match="64 tokens but the language model has 32"):
        backbone(backbone_weights=str(folder), patch=1)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="'bert' model"):
        backbone(backbone_weights=str(tmp_path / "bert"))


def test_checkpoint_rebuilds_from_the_folder_given_or_recorded(tmp_path):
    from s2gen.pretrain import checkpoint

    folder = _save_tiny_gpt2(tmp_path / "gpt2", seed=3)
    cfg = gpt2_cfg(backbone_weights=str(folder), objective="timedrl")
    torch.manual_seed(0)
    model = Pretrainer(cfg)
    train_steps(model.series)
    path = tmp_path / "last.pt"
    checkpoint.save(path, {"model": model.state_dict(), "config": cfg.to_dict()})
    assert path.stat().st_size < 150_000  # adapters, front end, heads: no 64-wide GPT-2
    x = np.random.default_rng(0).normal(size=(3, 64))
    expected = SeriesEncoder(cfg)
    expected.backbone.load_state_dict(model.series.state_dict())
    np.testing.assert_array_equal(load_encoder(path).embed(x), expected.eval().embed(x))
    moved = tmp_path / "moved"
    folder.rename(moved)
    with pytest.raises(ValueError, match="no config.json") as error:
        load_encoder(path)
    assert model.series.base["sha256"] in str(error.value)
    np.testing.assert_array_equal(
        load_encoder(path, backbone_weights=moved).embed(x), expected.embed(x)
    )
    wrong = _save_tiny_gpt2(tmp_path / "wrong", seed=9)
    with pytest.raises(ValueError, match=model.series.base["sha256"]):
        load_encoder(path, backbone_weights=wrong)


def test_multiscale_front_end_shapes_and_masked_points_reach_no_visible_token():
    front = MultiScaleEmbedding((3, 7, 15), channels=4, stride=2, patch=4, d=32)
    assert front.token_points == 8 and front(torch.randn(2, 64)).shape == (2, 8, 32)
    for name in ("gpt2", "s2"):
        overrides = {"frontend": "multiscale", "conv_stride": 2, "patch": 4}
        if name == "s2":
            overrides.update(backbone="s2", llm_layers=6, d_model=32, n_heads=2, d_ff=64)
        b = backbone(**overrides).eval()
        assert b.token_points == 8 and b.n_tokens(64) == 8
        g = torch.Generator().manual_seed(1)
        x = torch.randn(3, 64, generator=g)
        mask = torch.zeros(3, 8, dtype=torch.bool)
        mask[:, 3] = True
        moved = x.clone()
        moved[:, 24:32] += 100.0  # the points of token 3
        torch.testing.assert_close(b(x, mask), b(moved, mask))  # kernels of 15 cross tokens
        assert not torch.allclose(b(x), b(moved))


def test_gpt2_settings_are_checked_and_tied_to_the_backbone():
    with pytest.raises(ValueError, match="lora_rank=4 .*backbone gpt2 only"):
        PretrainConfig.preset("ci", lora_rank=4)
    with pytest.raises(ValueError, match="lora_targets='c_attn,wte'"):
        gpt2_cfg(lora_targets="c_attn,wte")
    with pytest.raises(ValueError, match="conv_kernels"):
        gpt2_cfg(frontend="multiscale", conv_kernels=[3, 4])
    with pytest.raises(ValueError, match="conv_stride \\* patch = 2 \\* 16"):
        gpt2_cfg(frontend="multiscale", conv_stride=2, patch=16, window=80)
    cfg = gpt2_cfg(frontend="multiscale", conv_kernels=[3, 5])
    assert cfg.conv_kernels == (3, 5) and cfg.token_points == 16 and cfg.n_patches == 4
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg
    assert PretrainConfig.preset("ci", frontend="multiscale").n_patches == 4  # 128 / (2 * 16)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    from tests.test_pretrain_run import make_store

    return make_store(tmp_path_factory)


def test_cli_pretrains_from_a_local_gpt2_resumes_exactly_and_embeds(store_path, tmp_path):
    from click.testing import CliRunner

    from s2gen.pretrain.cli import embed, pretrain

    folder = _save_tiny_gpt2(tmp_path / "gpt2", seed=3)
    settings = tmp_path / "tiny.toml"
    sizes = {k: v for k, v in GPT2.items() if k not in ("backbone", "window", "patch")}
    sizes["ckpt_every"] = 2
    settings.write_text("".join(f"{k} = {v!r}\n" for k, v in sizes.items()).replace("'", '"'))
    args = ["--data", store_path, "--preset", "ci", "--config", str(settings), "--window", "64"]
    args += ["--backbone", "gpt2", "--backbone-weights", str(folder), "--llm-layers", "2"]
    args += ["--lora-rank", "4", "--train-norms", "--batch-size", "16", "--device", "cpu"]
    args += ["--quiet"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    result = CliRunner().invoke(pretrain, [*args, "--out", str(whole), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert "randomly initialised" not in result.output

    def stop(batch, step, model):
        if step == 2:  # after the checkpoint of step 2
            raise KeyboardInterrupt
        return batch

    cfg = PretrainConfig.from_dict(json.loads((whole / "config.json").read_text()))
    with pytest.raises(KeyboardInterrupt):
        run(cfg, store_path, str(broken), device="cpu", progress=False, batch_hook=stop)
    assert torch.load(broken / "last.pt", weights_only=True)["step"] == 2
    result = CliRunner().invoke(pretrain, [*args, "--out", str(broken), "--steps", "4", "--resume"])
    assert result.exit_code == 0, result.output
    end_a = torch.load(whole / "last.pt", weights_only=True)
    end_b = torch.load(broken / "last.pt", weights_only=True)
    assert end_a["model"].keys() == end_b["model"].keys()
    assert not any("base_layer" in k or "wpe" in k for k in end_a["model"])
    assert "series.llm.h.0.ln_1.weight" in end_a["model"]  # --train-norms: saved
    for name, value in end_a["model"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, end_b["model"][name]), name
    saved = PretrainConfig.from_dict(end_a["config"])
    assert (saved.backbone, saved.lora_rank, saved.train_norms) == ("gpt2", 4, True)

    series = np.random.default_rng(0).normal(size=(3, 50))
    np.savetxt(tmp_path / "in.csv", series, delimiter=",")
    given = ["--checkpoint", str(whole / "last.pt"), "--input", str(tmp_path / "in.csv")]
    result = CliRunner().invoke(embed, [*given, "--out", str(tmp_path / "e.npy")])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        np.load(tmp_path / "e.npy"), load_encoder(whole / "last.pt").embed(series), atol=1e-6
    )
    other = _save_tiny_gpt2(tmp_path / "other", seed=4)
    wrong = CliRunner().invoke(embed, [*given, "--out", "x.npy", "--backbone-weights", str(other)])
    assert wrong.exit_code != 0 and "pass --backbone-weights" in wrong.output
    assert "Traceback" not in wrong.output

    random_run = CliRunner().invoke(
        pretrain,
        [*args[:8], "--backbone", "gpt2", "--llm-layers", "2", "--steps", "1", "--quiet"]
        + ["--batch-size", "16", "--device", "cpu", "--out", str(tmp_path / "random")],
    )
    assert random_run.exit_code == 0, random_run.output
    assert "cross-modal transfer needs pretrained GPT-2 weights" in random_run.output
    bad = CliRunner().invoke(pretrain, [*args[:6], "--lora-rank", "4", "--out", "y"])
    assert bad.exit_code != 0 and "backbone gpt2 only" in bad.output


def test_evaluate_rebuilds_gpt2_checkpoints_and_their_random_init(tmp_path):
    from click.testing import CliRunner

    from s2gen.evaluate.cli import evaluate
    from s2gen.pretrain import checkpoint

    folder = _save_tiny_gpt2(tmp_path / "gpt2", seed=3)
    cfg = gpt2_cfg(backbone_weights=str(folder), objective="timedrl", llm_pool="last")
    torch.manual_seed(0)
    model = Pretrainer(cfg)
    train_steps(model.series)
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    checkpoint.save(path, {"model": model.state_dict(), "config": cfg.to_dict()})
    args = ["--checkpoint", str(path), "--random-init", "--task", "classification"]
    args += ["--dataset", "ItalyPowerDemand", "--seeds", "1", "--no-baselines"]
    result = CliRunner().invoke(evaluate, [*args, "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "randomly initialised" not in result.output  # random-init keeps the GPT-2 base
    records = json.loads((tmp_path / "e" / "results.json").read_text())["records"]
    assert {r["model"] for r in records} == {"run/last", "random-init"}
    assert all(r["info"]["dim"] == 64 for r in records)
    wrong = _save_tiny_gpt2(tmp_path / "wrong", seed=8)
    bad = CliRunner().invoke(evaluate, [*args, "--backbone-weights", str(wrong), "--out", "z"])
    assert bad.exit_code != 0 and model.series.base["sha256"] in bad.output
    bad = CliRunner().invoke(evaluate, [*args[:2], *args[3:], "--llm-layers", "1", "--out", "z"])
    assert bad.exit_code != 0 and "--llm-layers" in bad.output


def test_only_the_gpt2_module_imports_transformers_or_peft_and_only_when_built():
    import re
    import subprocess
    import sys
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "s2gen"
    pattern = re.compile(r"^\s*(import|from)\s+(transformers|peft)\b", re.MULTILINE)
    users = sorted(
        str(p.relative_to(package)) for p in package.rglob("*.py") if pattern.search(p.read_text())
    )
    assert users == ["pretrain/backbones/gpt2.py"]
    code = (
        "import sys, s2gen.pretrain.model, s2gen.pretrain.cli, s2gen.evaluate.cli; "
        "print('transformers' in sys.modules or 'peft' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # CPU attention under vmap
def test_per_sample_masked_series_loss_works_under_vmap_for_oats():
    from s2gen.pretrain.losses import draw_patch_mask

    torch.manual_seed(0)
    model = Pretrainer(gpt2_cfg(objective="s2"), pretraining_vocabulary(vocabulary())).eval()
    g = torch.Generator().manual_seed(2)
    series = torch.randn(4, 64, generator=g) * 4 + 2
    mask = draw_patch_mask(4, 8, 0.4, g)
    batched = model(series, mask)
    params = {
        k: v.detach()
        for k, v in model.named_parameters()
        if k.startswith("series.") and v.requires_grad
    }

    def one(p, s, m):
        return torch.func.functional_call(model, p, (s[None], m[None]))[0]

    per_sample = torch.func.vmap(one, in_dims=(None, 0, 0))(params, series, mask)
    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, series, mask)
    torch.testing.assert_close(per_sample, batched, atol=1e-5, rtol=1e-4)
    assert grads["series.llm.h.1.attn.c_attn.lora_A.default.weight"].shape == (4, 8, 64)
