"""End to end: a tiny OATS pretraining run works and stays within 10 % of the baseline loss."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.evaluate.datasets import classification_file
from s2gen.oats.config import GeneratorConfig
from s2gen.oats.data import store_subset
from s2gen.oats.generator import train_generator
from s2gen.oats.wiring import oats_hook_from_options, reference_batch
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.stream import held_out_set
from s2gen.pretrain.train import run

STEPS = 40
TINY = dict(channels=(16, 32, 32), embed_dim=64, prototype_dim=32, prompt_channels=16)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("oats_e2e")
    store = tmp / "s2.zarr"
    args = ["generate", "--n", "2048", "--out", str(store), "--seed", "0", "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--length", "128", "--quiet"])
    assert result.exit_code == 0, result.output
    series, _ = store_subset(s2store.open(str(store)), 0.25, seed=0, field="y")
    gcfg = GeneratorConfig(**TINY, steps=150, batch_size=32, warmup=20)
    gen = tmp / "gen.pt"
    train_generator(series, gcfg).save(gen)
    cfg = PretrainConfig.preset(
        "ci", steps=STEPS, batch_size=32, val_samples=64, val_every=STEPS, log_every=1
    )
    return tmp, store, gen, cfg


def test_default_reference_set_is_the_reference_split_disjoint_from_validation(setup):
    tmp, store, gen, cfg = setup
    ref = reference_batch(cfg, str(store), None, 128)["series"]
    val = held_out_set(str(store), cfg, "val", limit=128)
    ref_rows = set(held_out_set(str(store), cfg, "reference", limit=128)["row"].tolist())
    assert len(ref) > 0 and ref.shape[1] == cfg.window
    assert ref_rows and not ref_rows & set(val["row"].tolist())
    np.savetxt(tmp / "ref.csv", np.asarray(val["series"][:8].numpy()), delimiter=",")
    from_file = reference_batch(cfg, str(store), str(tmp / "ref.csv"), 128)
    assert from_file["series"].shape == (8, cfg.window)
    assert torch.isfinite(from_file["series"]).all() and not from_file["has_symbol"].any()


def test_the_generator_never_trains_on_held_out_rows(setup):
    from s2gen.pretrain.data import split_of

    _, store, _, _ = setup
    handle = s2store.open(str(store))
    seeds = handle.read(0, len(handle), ("seed",))["seed"]
    for val, ref in ((10, 10), (50, 10)):
        split = split_of(seeds, val, ref)
        series, rows = store_subset(handle, 1.0, seed=0, val_permille=val, reference_permille=ref)
        assert len(rows) == (split == 0).sum() and (split[rows] == 0).all()
        assert len(series) == len(rows)  # one output channel per row here


def test_oats_pretraining_runs_and_stays_within_ten_percent_of_the_baseline(setup):
    tmp, store, gen, cfg = setup
    base = run(cfg, str(store), str(tmp / "base"), device="cpu", progress=False)
    hook = oats_hook_from_options(cfg, str(store), str(gen), explore_prob=0.3, after=5)
    boosted = run(cfg, str(store), str(tmp / "oats"), device="cpu", progress=False, batch_hook=hook)
    assert np.isfinite(base["val_loss"]) and np.isfinite(boosted["val_loss"])
    assert boosted["val_loss"] < 1.1 * base["val_loss"], (boosted["val_loss"], base["val_loss"])
    lines = (tmp / "oats" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    train = [r for r in logged if "loss" in r]
    assert all("oats_generated_share" not in r for r in train if r["step"] <= 5)
    late = [r for r in train if r["step"] > 5]
    assert late and all(r["oats_selected_share"] + r["oats_generated_share"] == 1.0 for r in late)
    assert np.mean([r["oats_generated_share"] for r in late]) > 0.3
    assert 0 < hook.cache.explore_steps < hook.cache.steps == STEPS - 5
    assert all(np.isfinite(r["oats_score_median"]) for r in late if "oats_score_median" in r)


def test_a_generator_of_another_length_is_refused_with_the_fix(setup):
    tmp, store, gen, cfg = setup
    with pytest.raises(ValueError, match="--window 64"):
        oats_hook_from_options(cfg.replace(window=64), str(store), str(gen))
    with pytest.raises(ValueError, match="no generator"):
        oats_hook_from_options(cfg, str(store), str(tmp / "missing.pt"))


def tiny_model(cfg, store, queue_ids: torch.Tensor | None = None):
    """A ``Pretrainer`` with a full queue of random symbol features of other expressions."""
    from s2gen.pretrain.model import Pretrainer
    from s2gen.pretrain.symbols import pretraining_vocabulary

    torch.manual_seed(0)
    vocabulary = pretraining_vocabulary(s2store.open(str(store)).vocabulary)
    model = Pretrainer(cfg.replace(max_tokens=48), vocabulary).eval()
    s2 = model.objectives["s2"]
    q, e = s2.queue_symbol.shape
    g = torch.Generator().manual_seed(1)
    s2.queue_symbol.copy_(torch.nn.functional.normalize(torch.randn(q, e, generator=g), dim=1))
    s2.queue_ids.copy_(torch.arange(q) if queue_ids is None else queue_ids)
    return model


def test_contrastive_term_per_sample_gradients_equal_looped_autograd(setup):
    tmp, store, gen, cfg = setup
    from s2gen.oats.augment import sample_keys
    from s2gen.oats.influence import per_sample_gradients, scored_parameters
    from s2gen.oats.wiring import (
        CONTRASTIVE_FIELDS,
        SeriesObjective,
        contrastive_sample_loss,
        symbol_targets,
    )

    model = tiny_model(cfg, store)
    rows = held_out_set(str(store), cfg.replace(max_tokens=48), "val", limit=6)
    rows["has_symbol"][0] = False  # an input-channel sample: masked-series loss only
    hook = oats_hook_from_options(cfg, str(store), str(gen), contrastive_weight=0.5)
    mask = hook.make_mask(sample_keys(rows))
    sample = {"series": rows["series"], "mask": mask, **symbol_targets(model, rows, 0.4)}
    assert torch.allclose(sample["target"].sum(1), torch.ones(6))
    prefixes = ("series.", "objectives.s2.patch_head.", "objectives.s2.series_proj.")
    names = scored_parameters(model, prefixes)
    fast = per_sample_gradients(model, contrastive_sample_loss(0.5), sample, names)
    plain = per_sample_gradients(model, contrastive_sample_loss(0.0), sample, names)
    params = dict(model.named_parameters())
    for i in range(6):
        model.zero_grad()
        objective = SeriesObjective(model, 0.5)
        args = [sample[k][i : i + 1] for k in ("series", "mask", *CONTRASTIVE_FIELDS)]
        objective(*args)[0].backward()
        slow = torch.cat(
            [
                params[n].grad.reshape(-1)
                if params[n].grad is not None
                else torch.zeros(params[n].numel())
                for n in names
            ]
        )
        assert float((fast[i] - slow).abs().max()) < 1e-5
    assert torch.allclose(fast[0], plain[0])  # no symbol: no contrastive term
    assert not torch.allclose(fast[1:], plain[1:])  # with a symbol the term counts
    out = hook(rows, 10**6, model)
    assert out["series"].shape == rows["series"].shape
    assert all(np.isfinite(v) for v in out["metrics"].values())


def test_scored_contrastive_term_is_the_training_steps_t2s_loss(setup):
    """Where the two coincide (no valid in-batch negative: one expression), the mean of the
    scored per-sample term equals the training step's t2s loss on that batch."""
    tmp, store, gen, cfg = setup
    from s2gen.oats.wiring import SeriesObjective, symbol_targets
    from s2gen.pretrain.train import alpha_at

    cfg = cfg.replace(momentum=1.0, max_tokens=48)  # m = 1: the step's EMA update keeps
    q = cfg.queue_size
    model = tiny_model(cfg, store, torch.where(torch.arange(q) % 5 == 0, -1, torch.arange(q)))
    val = held_out_set(str(store), cfg, "val", limit=5)
    rows = {k: v[[0, 0, 0, 0, 0]] for k, v in val.items()}  # one expression ...
    rows["series"] = val["series"]  # ... five windows
    rows["has_symbol"][3] = False  # a row without a symbol takes no part in t2s
    alpha = alpha_at(cfg.steps // 2, cfg)
    assert 0 < alpha < 1
    with torch.no_grad():  # scored first: the training step then enqueues the batch
        objective = SeriesObjective(model, 1.0)
        extra = symbol_targets(model, rows, alpha)
        per_sample = objective.contrastive(
            rows["series"], extra["key"], extra["valid"], extra["target"]
        )
        t2s = model.losses(rows, alpha, torch.Generator().manual_seed(7))["t2s"]
    has = rows["has_symbol"]
    assert float(per_sample[has].mean()) == pytest.approx(float(t2s), rel=1e-5, abs=1e-6)
    assert float(per_sample[has].std()) > 1e-3  # five different windows, five different terms


def test_sample_weight_makes_the_masked_series_loss_a_weighted_mean(setup):
    tmp, store, gen, cfg = setup
    from s2gen.pretrain.losses import draw_patch_mask

    model = tiny_model(cfg, store)
    batch = held_out_set(str(store), cfg.replace(max_tokens=48), "val", limit=6)
    weight = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    generator = torch.Generator()

    def mts(extra):
        return model.losses({**batch, **extra}, 0.0, generator.manual_seed(3))["mts"]

    with torch.no_grad():
        plain, ones = mts({}), mts({"sample_weight": torch.ones(6)})
        weighted = mts({"sample_weight": weight})
        mask = draw_patch_mask(6, cfg.n_patches, cfg.series_mask_ratio, generator.manual_seed(3))
        error = model(batch["series"], mask)  # the per-sample masked-series loss
    assert float(ones) == pytest.approx(float(plain), rel=1e-6)
    assert float(plain) == pytest.approx(float(error.mean()), rel=1e-6)
    assert float(weighted) == pytest.approx(float((error * weight).sum() / 5.0), rel=1e-6)
    assert float(weighted) != pytest.approx(float(plain), rel=1e-4)


class Kill(Exception):
    pass


class KillAt:
    """Wraps a hook: raises Kill at one step, like a killed process; keeps the hook's state API."""

    def __init__(self, hook, step: int) -> None:
        self.hook, self.step = hook, step

    def __call__(self, batch, step, model):
        if step == self.step:
            raise Kill
        return self.hook(batch, step, model)

    def state_dict(self):
        return self.hook.state_dict()

    def load_state_dict(self, state):
        self.hook.load_state_dict(state)


def test_oats_resume_after_kill_continues_with_identical_losses(setup):
    tmp, store, gen, cfg = setup
    cfg = cfg.replace(steps=16, val_every=8, ckpt_every=8)

    def hook():
        return oats_hook_from_options(cfg, str(store), str(gen), explore_prob=0.5, after=2)

    run(cfg, str(store), str(tmp / "whole"), device="cpu", progress=False, batch_hook=hook())
    broken = tmp / "broken"
    with pytest.raises(Kill):
        killed = KillAt(hook(), 12)
        run(cfg, str(store), str(broken), device="cpu", progress=False, batch_hook=killed)
    assert torch.load(broken / "last.pt", weights_only=True)["step"] == 8
    resumed = hook()  # a fresh process: its cache and random state come from last.pt
    run(cfg, str(store), str(broken), resume=True, device="cpu", progress=False, batch_hook=resumed)
    assert resumed.cache.steps == 16 - 2
    read = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = read(tmp / "whole"), read(broken)
    assert [m["step"] for m in a] == [m["step"] for m in b]
    for ma, mb in zip(a, b, strict=True):
        for key in ("loss", "mts", "t2s", "oats_explore", "oats_scored_share", "val_loss"):
            if key in ma:
                assert mb[key] == pytest.approx(ma[key], abs=1e-6, rel=1e-6), (ma["step"], key)


def test_pretrain_cli_takes_the_oats_options(setup, tmp_path):
    _, store, gen, _ = setup
    args = ["pretrain", "--data", str(store), "--preset", "ci", "--steps", "4", "--quiet"]
    args += ["--batch-size", "16", "--workers", "0", "--oats", str(gen), "--oats-after", "1"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("oats_generated_share" in m for m in logged if m["step"] > 1)
    add = [*args, "--out", str(tmp_path / "add"), "--oats-mix", "add", "--oats-weight", "0.25"]
    result = CliRunner().invoke(main, add)
    assert result.exit_code == 0, result.output
    logged = [json.loads(x) for x in (tmp_path / "add" / "metrics.jsonl").read_text().splitlines()]
    late = [m for m in logged if m["step"] > 1 and "oats_generated_share" in m]
    assert late and all(m["oats_selected_share"] == 1.0 for m in late)  # real rows all stay
    assert all(m["oats_generated_share"] > 0 for m in late)
    refused = CliRunner().invoke(main, [*add, "--oats-weight", "0"])
    assert refused.exit_code == 2 and "--oats-weight" in refused.output
    real = [*args, "--out", str(tmp_path / "real"), "--oats-ref", "GunPoint"]
    result = CliRunner().invoke(main, [*real, "--oats-ref", "ItalyPowerDemand"])
    assert result.exit_code == 0, result.output
    test_split = classification_file("GunPoint", "TEST")
    refused = CliRunner().invoke(main, [*real, "--oats-ref", str(test_split)])
    assert refused.exit_code == 1 and "test split" in refused.output
    plain = ["pretrain", "--data", str(store), "--out", str(tmp_path / "x")]
    refused = CliRunner().invoke(main, [*plain, "--oats-ref", "r.npy"])
    assert refused.exit_code == 2 and "--oats-ref needs --oats" in refused.output
    missing = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "y"), "--oats", "no.pt"])
    assert missing.exit_code == 1 and "no.pt" in missing.output
