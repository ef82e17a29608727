"""The SNR gate: the periodogram noise floor against theory, and rejection by sampler family."""

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import signal as sg

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.oats.data import load_series
from s2gen.oats.snr import snr_db, snr_gate

FAMILIES = ("mixture", "arma", "kernel_synth", "trend_season", "imf")


def sines(length: int, rng: np.random.Generator, n_random: int = 500) -> np.ndarray:
    """Noise-free cosines of every integer period 2..L/2 and of random periods, random phases."""
    t = np.arange(length)
    periods = np.concatenate([np.arange(2, length // 2 + 1), rng.uniform(2, length / 2, n_random)])
    phase = rng.uniform(0, 2 * np.pi, (len(periods), 1))
    phase[0] = 0.3  # period 2 is (-1)^t cos(phase): keep it away from zero amplitude
    return np.cos(2 * np.pi * t / periods[:, None] + phase)


@pytest.mark.parametrize("length, floor_db", [(32, 25.0), (64, 40.0), (128, 55.0), (256, 70.0)])
def test_every_noise_free_sine_of_period_2_to_half_the_window_passes(length, floor_db):
    rng = np.random.default_rng(length)
    snr = snr_db(sines(length, rng))
    assert snr.min() > floor_db, snr.min()  # measured minima 29, 45, 61, 77 dB
    t = np.arange(length)
    period5 = snr_db(np.sin(2 * np.pi * t / 5 + rng.uniform(0, 6, (20, 1))))
    assert np.all(period5 > floor_db)  # the old moving-average estimate gave -20 to -32 dB


def test_square_triangle_and_sawtooth_waves_of_any_period_pass():
    rng = np.random.default_rng(1)
    t = np.arange(128)
    periods = np.concatenate([np.arange(3, 65), rng.uniform(3, 64, 300)])
    arg = 2 * np.pi * t / periods[:, None] + rng.uniform(0, 2 * np.pi, (len(periods), 1))
    for wave in (sg.square(arg), sg.sawtooth(arg, 0.5), sg.sawtooth(arg)):
        assert snr_db(wave).min() > 0.0  # measured minima 8.7, 31, 4.4 dB


@pytest.mark.parametrize("length, pass_rate", [(64, 0.01), (128, 0.001), (256, 0.0)])
def test_white_noise_is_rejected_and_its_floor_is_its_variance(length, pass_rate):
    rng = np.random.default_rng(2)
    noise = 3.0 * rng.standard_normal((20_000, length))
    snr = snr_db(noise)
    assert np.mean(snr >= 0.0) <= pass_rate  # measured 0.25 %, 0.005 %, 0
    # the floor median(I_k) / ln 2 estimates the variance: P(I_k < s^2 ln 2) = 1/2 exactly
    x = noise - noise.mean(axis=1, keepdims=True)
    taper = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    power = np.abs(np.fft.rfft(x * taper, axis=1)) ** 2 / (taper**2).sum()
    inner = power[:, 2 : length // 2 - 1]
    se = 0.5 / np.sqrt(inner.size)  # an upper bound: neighbours are correlated, not more
    assert abs(np.mean(inner < 9.0 * np.log(2)) - 0.5) < 30 * se
    assert abs(inner.mean() / 9.0 - 1.0) < 0.01


def test_white_noise_with_outliers_is_rejected():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5000, 128))
    x[rng.random(x.shape) < 0.03] *= 6.0
    assert np.mean(snr_db(x) >= 0.0) < 0.005


@pytest.mark.parametrize("true_db", [0.0, 3.0, 10.0, 20.0])
def test_sine_in_white_noise_gets_its_true_snr_within_a_db(true_db):
    rng = np.random.default_rng(4)
    t = np.arange(256)
    period = rng.uniform(4, 64, (400, 1))
    clean = np.sqrt(2.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3, (400, 1)))  # var 1
    noisy = clean + 10 ** (-true_db / 20) * rng.standard_normal((400, 256))
    assert abs(np.median(snr_db(noisy)) - true_db) < 1.0  # measured -0.3 to -0.1 dB off


def test_constant_windows_have_no_signal_and_short_windows_are_refused():
    assert snr_db(np.full((2, 64), 3.0)).tolist() == [-np.inf, -np.inf]
    with pytest.raises(ValueError, match="L >= 32"):
        snr_db(np.zeros((2, 16)))


def test_gate_is_absolute_relative_or_off():
    snr = np.array([5.0, -np.inf, 1.0, -2.0, 9.0, 1.0, -np.inf, 3.0])
    assert not snr_gate(snr).any()  # both off
    assert snr_gate(snr, 0.0).tolist() == [0, 1, 0, 1, 0, 0, 1, 0]
    assert np.flatnonzero(snr_gate(snr, quantile=0.25)).tolist() == [1, 6]
    assert np.flatnonzero(snr_gate(snr, quantile=0.5)).tolist() == [1, 2, 3, 6]  # ties: 2 first
    assert np.flatnonzero(snr_gate(snr, 2.0, 0.25)).tolist() == [1, 2, 3, 5, 6]


@pytest.fixture(scope="module")
def family_windows(tmp_path_factory):
    """x and y series (256 rows, L = 128) of a store per sampler family."""
    tmp = tmp_path_factory.mktemp("families")
    out = {}
    for family in FAMILIES:
        path = tmp / f"{family}.zarr"
        args = ["generate", "--n", "256", "--length", "128", "--seed", "0", "--workers", "1"]
        args += ["--samplers", f"{family}=1", "--out", str(path), "--quiet"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert (s2store.open(str(path)).read(0, 256, ("sampler",))["sampler"][:, 0] > 0).all()
        out[family] = {field: load_series(str(path), field=field) for field in ("x", "y")}
    return out


def test_rejection_rate_by_sampler_family(family_windows):
    """Rates at 0 dB (absolute) and at the default gate (the noisiest quarter of each batch)."""
    rng = np.random.default_rng(5)
    rates = {
        f: {k: float(np.mean(snr_db(v) < 0.0)) for k, v in w.items()}
        for f, w in family_windows.items()
    }
    # the default gate on batches of 32 output windows drawn from all families together
    ys = np.concatenate([family_windows[f]["y"] for f in FAMILIES])
    family = np.repeat(np.arange(len(FAMILIES)), [len(family_windows[f]["y"]) for f in FAMILIES])
    order = rng.permutation(len(ys))
    gated = np.zeros(len(ys), dtype=bool)
    for start in range(0, len(order) - 31, 32):
        batch = order[start : start + 32]
        gated[batch] = snr_gate(snr_db(ys[batch]), quantile=0.25)
    print("\nSNR gate rejection by sampler family (256 rows, L = 128)")
    print("family        x @ 0 dB  y @ 0 dB  y @ default (quarter of mixed batches)")
    for k, f in enumerate(FAMILIES):
        share = gated[family == k].mean()
        print(f"{f:13s} {rates[f]['x']:8.3f}  {rates[f]['y']:8.3f}  {share:8.3f}")
    # i.i.d. mixture draws are white noise by construction; seasonal and IMF inputs are structured
    assert rates["mixture"]["x"] > 0.9  # measured 0.997
    assert rates["trend_season"]["x"] < 0.05 and rates["imf"]["x"] < 0.05  # measured 0.003, 0
    assert gated[family == 0].mean() > 2 * gated[family == 3].mean()  # mixture before seasonal
