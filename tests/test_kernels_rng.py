"""The per-row random number generator: distributions and reproducibility."""

import numpy as np
from scipy import stats

from s2gen.kernels.rng import choice, fill_normal, new_state, randint, uniform
from s2gen.kernels.seeds import row_seeds


def _uniforms(seed, n):
    state = new_state(np.uint64(seed))
    return np.array([uniform(state) for _ in range(n)])


def test_same_seed_gives_same_stream_and_different_seeds_differ():
    assert np.array_equal(_uniforms(5, 100), _uniforms(5, 100))
    assert not np.array_equal(_uniforms(5, 100), _uniforms(6, 100))


def test_uniform_is_uniform_on_unit_interval():
    u = _uniforms(1, 50_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_matches_standard_normal_including_the_ziggurat_tail():
    x = np.empty(400_000)
    fill_normal(new_state(np.uint64(11)), x)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    # mean and variance within 4 standard errors of 0 and 1
    assert abs(x.mean()) < 4 / np.sqrt(x.size)
    assert abs(x.var() - 1) < 4 * np.sqrt(2 / x.size)
    # the tail beyond the base strip (r = 3.4426) is sampled separately
    tail = np.mean(np.abs(x) > 3.442619855899)
    expected = 2 * stats.norm.sf(3.442619855899)
    assert abs(tail - expected) < 4 * np.sqrt(expected / x.size)


def test_randint_covers_both_ends_uniformly():
    state = new_state(np.uint64(3))
    draws = np.array([randint(state, 2, 6) for _ in range(25_000)])
    counts = np.bincount(draws, minlength=7)[2:]
    assert counts.sum() == draws.size and (draws >= 2).all() and (draws <= 6).all()
    assert stats.chisquare(counts).pvalue > 1e-3


def test_choice_follows_weights_and_never_picks_zero_weight():
    state = new_state(np.uint64(4))
    weights = np.array([0.0, 1.0, 3.0, 0.0, 2.0])
    cumulative = np.cumsum(weights)
    draws = np.array([choice(state, cumulative) for _ in range(30_000)])
    counts = np.bincount(draws, minlength=5)
    assert counts[0] == 0 and counts[3] == 0
    expected = weights[[1, 2, 4]] / weights.sum() * draws.size
    assert stats.chisquare(counts[[1, 2, 4]], expected).pvalue > 1e-3


def test_row_seeds_depend_only_on_base_seed_and_row_index():
    whole = row_seeds(7, 0, 1000)
    assert np.array_equal(whole[250:600], row_seeds(7, 250, 600))
    assert len(np.unique(whole)) == whole.size
    assert not np.array_equal(whole, row_seeds(8, 0, 1000))
