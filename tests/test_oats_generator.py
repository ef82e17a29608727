"""The OATS guided diffusion generator: schedule, training, guidance, checkpoints, CLI."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.oats.cli import oats
from s2gen.oats.config import GeneratorConfig, terminal_alpha_bar
from s2gen.oats.diffusion import Schedule, ddim_timesteps, q_sample
from s2gen.oats.generator import Generator, train_generator, unzscore, zscore
from s2gen.oats.metrics import feature_mmd
from s2gen.oats.unet import GuidedDenoiser

L = 64
TINY = dict(channels=(16, 32, 32), embed_dim=64, prototype_dim=32, prompt_channels=16)


def families(n: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Four synthetic families, (n, length) each: AR(0.95), noisy sine, trend walk, square."""
    t = np.arange(length)
    e = rng.standard_normal((n, length + 50))
    ar = np.zeros_like(e)
    for i in range(1, length + 50):
        ar[:, i] = 0.95 * ar[:, i - 1] + e[:, i]
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    shift = rng.integers(0, 20, (n, 1))
    return {
        "ar": ar[:, 50:],
        "sine": np.sin(2 * np.pi * t / 16 + phase) + 0.3 * rng.standard_normal((n, length)),
        "walk": np.cumsum(rng.standard_normal((n, length)), 1) + rng.uniform(-0.3, 0.3, (n, 1)) * t,
        "square": np.sign(np.sin(2 * np.pi * (t + shift) / 20))
        + 0.3 * rng.standard_normal((n, length)),
    }


@pytest.fixture(scope="module")
def trained():
    """A tiny generator trained 500 steps on 1,600 windows of four families (about 20 s)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    train = families(400, L, rng)
    test = families(300, L, rng)
    cfg = GeneratorConfig(**TINY, steps=500, batch_size=64, warmup=50)
    generator = train_generator(np.concatenate(list(train.values())), cfg)
    return generator, test


def test_zscore_inverse_is_exact():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 37)) * rng.uniform(0.001, 1e4, (50, 1)) + 3e3).astype(np.float32)
    x[3] = 7.5  # a constant row keeps scale 1
    z, loc, scale = zscore(x)
    assert scale[3] == 1.0 and np.all(z[3] == 0)
    np.testing.assert_allclose(z.mean(1), 0, atol=1e-9)
    back = unzscore(z, loc, scale)
    assert np.array_equal(back.astype(np.float32), x)  # exact in the stored dtype
    np.testing.assert_allclose(back, x.astype(np.float64), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        zscore(np.array([[1.0, np.nan]]))


def test_q_sample_has_the_schedule_moments():
    s = Schedule(200, 1e-4, 0.05)
    assert np.isclose(float(s.betas[0]), 1e-4) and np.isclose(float(s.betas[-1]), 0.05)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 4), 2.0)
    t = torch.full((20000,), 120, dtype=torch.long)
    xt = q_sample(s, x0, t, torch.randn(x0.shape, generator=g))
    abar = float(s.alpha_bar[120])
    se = (1 - abar) ** 0.5 / (80000**0.5)
    assert abs(float(xt.mean()) - 2.0 * abar**0.5) < 5 * se
    assert abs(float(xt.var()) - (1 - abar)) < 0.03 * (1 - abar)


def test_default_schedule_ends_in_noise_and_one_that_does_not_is_refused():
    cfg = GeneratorConfig()
    schedule = Schedule(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    abar_t = float(schedule.alpha_bar[-1])
    assert abar_t < 1e-3  # 6.0e-4: x_T holds 2.5 % of the signal's scale, sampling starts there
    assert terminal_alpha_bar(cfg.timesteps, cfg.beta_start, cfg.beta_end) == pytest.approx(
        abar_t, rel=1e-9
    )
    with pytest.raises(ValueError, match="beta_end=0.05 .*abar_T = 0.029"):
        GeneratorConfig(beta_start=1e-4, beta_end=0.05)  # the former default
    with pytest.raises(ValueError, match="beta_end"):
        GeneratorConfig(timesteps=20)  # too few steps for this beta_end


def test_ddim_starts_at_the_last_step_and_ends_at_zero():
    seq = ddim_timesteps(200, 20)
    assert seq[0] == 199 and seq[-1] == 0 and len(set(seq)) == 20
    assert all(a > b for a, b in zip(seq, seq[1:], strict=False))
    with pytest.raises(ValueError, match="ddim_steps"):
        ddim_timesteps(10, 11)


def test_prompt_weights_are_sparse_and_non_negative():
    model = GuidedDenoiser(GeneratorConfig(**TINY))
    weights, cond = model.conditioner(
        torch.randn(32, L, generator=torch.Generator().manual_seed(0))
    )
    assert weights.shape == (32, 16) and cond.shape == (32, 32)
    assert bool((weights >= 0).all()) and bool((weights == 0).any())


def test_config_names_the_bad_field():
    with pytest.raises(ValueError, match="attention_heads"):
        GeneratorConfig(channels=(16, 32, 24), attention_heads=16)
    with pytest.raises(ValueError, match="cond_drop"):
        GeneratorConfig(cond_drop=1.5)
    cfg = GeneratorConfig(**TINY)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg


def test_generator_loss_falls_and_samples_are_finite_and_deterministic(trained):
    generator, test = trained
    h = generator.history
    assert len(h) == 500
    assert np.mean(h[-100:]) < 0.5 * np.mean(h[:10])
    guides = test["walk"][:8]
    a = generator.sample(guides, seed=3)
    assert a.shape == (8, L) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, generator.sample(guides, seed=3))
    assert not np.array_equal(a, generator.sample(guides, seed=4))
    # de-normalised with the guide's scale: a guide scaled by 100 and shifted gives the same shape
    b = generator.sample(guides * 100.0 + 5.0, seed=3)
    np.testing.assert_allclose(b, a * 100.0 + 5.0, rtol=1e-3, atol=1.0)
    unguided = generator.sample(n=5, seed=0, ddim_steps=10)
    assert unguided.shape == (5, L) and np.isfinite(unguided).all()


def test_guided_samples_match_the_guides_family_better_than_unguided_and_are_not_copies(trained):
    generator, test = trained
    unguided = generator.sample(n=64, seed=1)
    ratios, corrs = {}, {}
    for name, windows in test.items():
        guides, held_out = windows[:64], windows[64:]
        guided = generator.sample(guides, seed=2)
        ratios[name] = feature_mmd(guided, held_out) / feature_mmd(unguided, held_out)
        corrs[name] = np.mean(
            [np.corrcoef(g, s)[0, 1] for g, s in zip(guides, guided, strict=True)]
        )
    assert all(r < 1.0 for r in ratios.values()), ratios  # measured 0.29 0.68 0.48 0.96
    assert np.mean(list(ratios.values())) < 0.8, ratios  # measured 0.60
    assert all(c < 0.9 for c in corrs.values()), corrs  # measured |corr| < 0.1


def test_feature_mmd_is_zero_for_a_set_with_itself_and_grows_between_families():
    rng = np.random.default_rng(5)
    f = families(100, L, rng)
    assert feature_mmd(f["ar"], f["ar"]) == pytest.approx(0.0, abs=1e-12)
    same = feature_mmd(f["sine"][:50], f["sine"][50:])
    other = feature_mmd(f["square"][:50], f["sine"][50:])
    assert other > 5 * same


def test_checkpoint_round_trip_gives_the_same_samples(trained, tmp_path):
    generator, test = trained
    path = tmp_path / "gen.pt"
    generator.save(path)
    loaded = Generator.load(path)
    assert loaded.cfg == generator.cfg and loaded.length == L
    guides = test["sine"][:4]
    assert np.array_equal(loaded.sample(guides, seed=7), generator.sample(guides, seed=7))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable generator"):
        Generator.load(tmp_path / "junk.pt")


def test_cli_trains_a_generator_and_samples_into_a_store_and_npy(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "s2.zarr"
    args = ["generate", "--n", "256", "--out", str(data), "--seed", "0", "--workers", "1"]
    args += ["--length", "32", "--chunk-rows", "64", "--shard-rows", "128", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    gen = tmp_path / "gen.pt"
    args = ["train-generator", "--data", str(data), "--out", str(gen), "--subset", "0.5"]
    result = CliRunner().invoke(oats, [*args, "--steps", "5", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert "trained on" in result.output and gen.exists()
    assert Generator.load(gen).source["store_rows"] == 128

    out_store, out_npy = tmp_path / "gen.zarr", tmp_path / "gen.npy"
    common = [
        "--generator",
        str(gen),
        "--guides",
        str(data),
        "--rows",
        "10:30",
        "--ddim-steps",
        "4",
    ]
    for out in (out_store, out_npy):
        result = CliRunner().invoke(oats, ["sample", *common, "--out", str(out)])
        assert result.exit_code == 0, result.output
    samples = np.load(out_npy)
    assert samples.shape == (20, 32) and np.isfinite(samples).all()
    view = s2store.open(str(out_store))
    block = view.read(0, 20, ["x", "n_in", "n_out", "sampler", "seed"])
    assert np.array_equal(block["x"][:, 0], samples)
    assert (block["n_in"] == 1).all() and (block["n_out"] == 0).all()
    assert (block["sampler"] == s2store.DIFFUSION_SAMPLER).all()
    assert len(set(block["seed"].tolist())) == 20
    assert view.header["sampler_codes"]["diffusion"] == s2store.DIFFUSION_SAMPLER
    assert view.header["source"]["guides"] == str(data) and view.config.length == 32
    assert view.has_checksums  # written, recorded and committed like a generated store
    records = s2store.object_records(str(out_store))[0]
    for a, name in enumerate(s2store.ARRAY_NAMES):
        assert (records[a, 0] == 0) == (name in s2store.SERIES_ONLY_EMPTY), name
    result = CliRunner().invoke(main, ["validate", str(out_store), "--sample", "0"])
    assert result.exit_code == 0 and "OK: 20 rows" in result.output, result.output

    result = CliRunner().invoke(oats, ["sample", *common, "--out", str(out_store)])
    assert result.exit_code != 0 and "already holds a store" in result.output

    # guides longer than the generator's window: one window each, at --offset or at random
    short = tmp_path / "gen16.pt"
    args = ["train-generator", "--data", str(data), "--out", str(short), "--subset", "0.5"]
    result = CliRunner().invoke(oats, [*args, "--steps", "3", "--window", "16"])
    assert result.exit_code == 0, result.output
    guides = s2store.open(str(data)).read(10, 30, ["y"])["y"][:, 0]  # (20, 32)
    windows = {}
    for name, extra in (("at8", ["--offset", "8"]), ("random", []), ("random2", [])):
        out = tmp_path / f"{name}.npy"
        args = ["sample", *common, "--generator", str(short), "--out", str(out), *extra]
        result = CliRunner().invoke(oats, args)
        assert result.exit_code == 0, result.output
        windows[name] = np.load(out)
    assert windows["at8"].shape == (20, 16)
    expected = Generator.load(short).sample(guides[:, 8:24], ddim_steps=4, seed=0)
    np.testing.assert_allclose(windows["at8"], expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(windows["random"], windows["random2"])  # seeded
    assert not np.allclose(windows["random"], windows["at8"])
    args = ["sample", *common, "--generator", str(short), "--out", str(tmp_path / "y.npy")]
    result = CliRunner().invoke(oats, [*args, "--offset", "17"])
    assert result.exit_code != 0 and "offset=17 is invalid" in result.output
    assert "offsets 0..16" in result.output
    np.save(tmp_path / "short.npy", guides[:, :12])
    args = ["sample", "--generator", str(short), "--guides", str(tmp_path / "short.npy")]
    result = CliRunner().invoke(oats, [*args, "--out", str(tmp_path / "z.npy")])
    assert result.exit_code != 0 and "fewer than the generator's 16" in result.output
    result = CliRunner().invoke(
        oats,
        [
            "sample",
            "--generator",
            str(gen),
            "--guides",
            str(data),
            "--rows",
            "5:2",
            "--out",
            str(tmp_path / "x.npy"),
        ],
    )
    assert result.exit_code != 0 and "START:STOP" in result.output
