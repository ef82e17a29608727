"""Series augmentations: numpy twins given the same draws, properties, batches, pairs."""

import numpy as np
import pytest

from s2gen.config import AUGMENTATIONS, GenerateConfig
from s2gen.generators.expressions import evaluate_program
from s2gen.generators.pairs import generate_batch
from s2gen.kernels import augment as aug
from s2gen.kernels.rng import fill_normal, new_state, normal, randint, uniform_range
from s2gen.kernels.seeds import row_seeds
from tests import naive


def _row(L, seed=0):
    rng = np.random.default_rng(seed)
    row = np.cumsum(rng.standard_normal(L))
    return (row - row.mean()) / row.std()


def _twin(kind, state, row):
    """The augmentation by numpy/scipy, drawing the same numbers in the same order."""
    L = row.size
    if kind in (aug.TIME_WARP, aug.MAGNITUDE_WARP):
        knots = np.array([1.0 + aug.WARP_SIGMA * normal(state) for _ in range(aug.KNOTS)])
        curve = np.maximum(naive.natural_spline(knots, L), aug.WARP_FLOOR)
        return naive.time_warp(row, curve) if kind == aug.TIME_WARP else row * curve
    if kind == aug.WINDOW_SLICE:
        width = int(np.ceil(aug.SLICE_RATIO * L))
        return naive.window_slice(row, randint(state, 0, L - width), width)
    if kind == aug.FREQUENCY:
        bins = (L - 1) // 2
        width = aug.band_width(L)
        first = randint(state, 1, bins - width + 1)
        draws = [(uniform_range(state, 0.5, 1.5), uniform_range(state, -np.pi / 2, np.pi / 2))
                 for _ in range(width)]  # fmt: skip
        return naive.perturb_band(row, first, *zip(*draws, strict=True))
    if kind == aug.SCALING:
        return row * np.exp(aug.SCALING_SIGMA * normal(state))
    sigma = uniform_range(state, *aug.JITTER_SIGMA)
    noise = np.empty(L)
    fill_normal(state, noise)
    return row + sigma * noise


def test_kernel_order_is_the_config_order():
    names = ("time_warp", "window_slice", "frequency", "magnitude_warp", "scaling", "jitter")
    assert AUGMENTATIONS == names and aug.N_AUGMENTATIONS == len(names)
    kinds = (aug.TIME_WARP, aug.WINDOW_SLICE, aug.FREQUENCY, aug.MAGNITUDE_WARP, aug.SCALING)
    assert kinds + (aug.JITTER,) == tuple(range(6))


@pytest.mark.parametrize("L", [9, 64, 257])
def test_natural_spline_matches_scipy(L):
    knots = np.random.default_rng(L).normal(1.0, 0.3, aug.KNOTS)
    out = np.empty(L)
    aug.natural_spline(knots, out)
    np.testing.assert_allclose(out, naive.natural_spline(knots, L), rtol=1e-12, atol=1e-12)


def test_interpolation_is_np_interp():
    row = _row(50)
    positions = np.r_[np.random.default_rng(1).uniform(0, 49, 200), 0.0, 49.0, 17.0]
    out = np.empty(positions.size)
    aug.interpolate(row, positions, out)
    np.testing.assert_array_equal(out, np.interp(positions, np.arange(50), row))


@pytest.mark.parametrize("kind", range(6), ids=AUGMENTATIONS)
@pytest.mark.parametrize("L", [16, 255, 256])
def test_each_augmentation_equals_its_numpy_twin_given_the_same_draws(kind, L):
    row = _row(L, seed=kind)
    state = new_state(np.uint64(1000 + kind * 7 + L))
    expected = _twin(kind, state.copy(), row.copy())
    got = row.copy()
    assert aug.apply_one(state, kind, got, np.empty(L), np.empty(L))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_jitter_adds_noise_of_variance_sigma_squared():
    L = 200_000
    row = _row(L)
    state = new_state(np.uint64(3))
    sigma = uniform_range(state.copy(), *aug.JITTER_SIGMA)
    out = row.copy()
    aug.apply_one(state, aug.JITTER, out, np.empty(L), np.empty(L))
    added = out - row
    assert abs(added.var() - sigma**2) < 5 * sigma**2 * np.sqrt(2 / L)
    assert (
        abs(out.var() - (row.var() + sigma**2)) < 5 * sigma**2 * np.sqrt(2 / L) + 5 * sigma / L**0.5
    )


def test_scaling_multiplies_by_one_positive_factor():
    row = _row(300)
    out = row.copy()
    aug.apply_one(new_state(np.uint64(4)), aug.SCALING, out, np.empty(300), np.empty(300))
    ratio = out / row
    assert np.ptp(ratio) < 1e-12 and ratio[0] > 0 and ratio[0] != 1.0


@pytest.mark.parametrize("L", [10, 256, 1000])
def test_window_slice_keeps_the_window_endpoints_and_warps_keep_the_series_ends(L):
    row = _row(L, seed=5)
    state = new_state(np.uint64(L))
    width = int(np.ceil(aug.SLICE_RATIO * L))
    start = randint(state.copy(), 0, L - width)
    out = row.copy()
    aug.apply_one(state, aug.WINDOW_SLICE, out, np.empty(L), np.empty(L))
    assert out[0] == row[start] and out[-1] == row[start + width - 1]
    assert row[start : start + width].min() <= out.min() and out.max() <= row.max()
    warped = row.copy()
    aug.apply_one(new_state(np.uint64(L + 1)), aug.TIME_WARP, warped, np.empty(L), np.empty(L))
    assert warped[0] == row[0] and warped[-1] == row[-1]
    assert row.min() <= warped.min() and warped.max() <= row.max()


@pytest.mark.parametrize("L", [3, 64, 255, 256])
def test_frequency_perturbation_keeps_length_and_changes_only_its_band(L):
    row = _row(L, seed=6)
    out = row.copy()
    assert aug.apply_one(new_state(np.uint64(L)), aug.FREQUENCY, out, np.empty(L), np.empty(L))
    assert out.shape == row.shape and out.dtype == np.float64 and np.isfinite(out).all()
    before, after = np.fft.rfft(row), np.fft.rfft(out)
    changed = np.flatnonzero(np.abs(after - before) > 1e-9 * np.abs(before).max())
    width = aug.band_width(L)
    assert 1 <= changed.size <= width and changed.min() >= 1 and changed.max() < L / 2
    assert changed.max() - changed.min() < width
    gain = np.abs(after[changed]) / np.abs(before[changed])
    assert ((gain > 0.5 - 1e-9) & (gain < 1.5 + 1e-9)).all()
    assert abs(out.mean() - row.mean()) < 1e-12  # the mean (bin 0) is untouched


def test_frequency_perturbation_has_no_band_below_three_points():
    out = np.array([1.0, -1.0])
    assert not aug.apply_one(new_state(np.uint64(1)), aug.FREQUENCY, out, np.empty(2), np.empty(2))
    assert out.tolist() == [1.0, -1.0]


def test_each_augmentation_is_applied_with_its_probability_and_zero_draws_nothing():
    chances = np.array([0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    n, L = 4000, 32
    _, mask = aug.augment_series(
        np.tile(_row(L), (n, 1)), dict(zip(AUGMENTATIONS, chances, strict=True)), row_seeds(1, 0, n)
    )
    for k, chance in enumerate(chances):
        share = np.mean(mask & (1 << k) > 0)
        assert abs(share - chance) < 4.5 * np.sqrt(chance * (1 - chance) / n), (k, share)
    state = new_state(np.uint64(9))
    before = state.copy()
    row = _row(L)
    assert aug.augment_row(state, np.zeros(6), row, np.empty(L), np.empty(L)) == 0
    np.testing.assert_array_equal(state, before)  # nothing drawn from the row's stream
    np.testing.assert_array_equal(row, _row(L))


def test_batches_are_deterministic_per_row_seed_in_any_split():
    x = np.stack([_row(64, seed=s) for s in range(40)]).reshape(20, 2, 64)
    seeds = row_seeds(2, 0, 20)
    spec = {"jitter": 0.5, "time_warp": 0.5, "frequency": 0.5}
    whole, mask = aug.augment_series(x, spec, seeds)
    part, part_mask = aug.augment_series(x[5:9], spec, seeds[5:9])
    np.testing.assert_array_equal(whole[5:9], part)
    np.testing.assert_array_equal(mask[5:9], part_mask)
    assert whole.shape == x.shape and mask.shape == (20, 2) and mask.any()
    flat, flat_mask = aug.augment_series(x[:, 0], spec, seeds)
    assert flat.shape == (20, 64) and flat_mask.shape == (20,)
    np.testing.assert_array_equal(
        x, np.stack([_row(64, seed=s) for s in range(40)]).reshape(20, 2, 64)
    )


@pytest.mark.parametrize(
    "spec, seeds, message",
    [
        ({"jiter": 0.5}, 3, "unknown augmentation"),
        ({"jitter": 1.5}, 3, r"\[0, 1\]"),
        ({"jitter": 0.5}, 2, "one per row"),
    ],
)
def test_bad_batch_input_is_named(spec, seeds, message):
    with pytest.raises(ValueError, match=message):
        aug.augment_series(np.zeros((3, 16)), spec, row_seeds(0, 0, seeds))


def test_mixup_mixes_rows_with_beta_weights():
    x = np.random.default_rng(0).standard_normal((2000, 2, 16)).astype(np.float32)
    mixed, lam, perm = aug.mixup(x, 0.4, np.random.default_rng(1))
    assert mixed.dtype == np.float32 and mixed.shape == x.shape
    np.testing.assert_allclose(mixed, lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm],
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert ((lam >= 0) & (lam <= 1)).all() and sorted(perm) == list(range(2000))
    # Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1))
    assert abs(lam.mean() - 0.5) < 4.5 * np.sqrt(1 / (4 * 1.8) / 2000)
    with pytest.raises(ValueError, match="alpha"):
        aug.mixup(x, 0.0, np.random.default_rng(1))


def test_augmented_pairs_keep_y_equal_to_f_of_the_stored_x():
    spec = dict.fromkeys(AUGMENTATIONS, 0.5)
    config = GenerateConfig(
        length=96, max_input_dim=3, max_output_dim=2, augment=tuple(spec.items())
    )
    b = generate_batch(config, row_seeds(4, 0, 400))
    assert b.augment.shape == (400, 3) and b.augment.dtype == np.uint8
    real = np.arange(3)[None, :] < b.n_in[:, None]
    assert not b.augment[~real].any() and b.augment[real].any()
    bits = np.unpackbits(b.augment[real][:, None], axis=1, bitorder="little")[:, :6]
    assert (np.abs(bits.mean(axis=0) - 0.5) < 0.1).all()
    for i in range(0, 400, 7):
        x = b.x[i, : b.n_in[i]].astype(np.float64)
        for j in range(b.n_out[i]):
            want = evaluate_program(b.code[i, j], b.arg[i, j], x, b.plen[i, j])
            np.testing.assert_array_equal(b.y[i, j], want.astype(np.float32))


def test_zero_probabilities_change_no_byte_of_a_pair():
    plain = generate_batch(GenerateConfig(seed=2), row_seeds(2, 0, 300))
    off = generate_batch(GenerateConfig(seed=2, augment=(("jitter", 0.0),)), row_seeds(2, 0, 300))
    assert plain.augment is None and not off.augment.any()
    for name in ("x", "y", "code", "arg", "sampler"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(off, name))
    on = generate_batch(GenerateConfig(seed=2, augment=(("jitter", 1.0),)), row_seeds(2, 0, 300))
    assert (on.augment[:, 0] == 1 << aug.JITTER).all() and not np.array_equal(on.x, plain.x)


@pytest.mark.parametrize(
    "augment, name", [((("jiter", 0.5),), "augment"), ((("jitter", 2.0),), "augment\\[jitter\\]")]
)
def test_bad_config_names_the_augmentation(augment, name):
    with pytest.raises(ValueError, match=name):
        GenerateConfig(augment=augment)
