"""Input series X of one pair: a sampler per channel, z-score, one scale factor.

SymTime section 3.1 and the reference generator (shared/reference/
s2generator.md section 3): each channel independently picks a sampler family by
weight, is z-scored, and then all channels are multiplied by one factor
s ~ U(0, s_max) (s = 1 when s_max is 0). Finally X is rounded to the store
dtype, because the stored x is what f is evaluated on.
"""

import numpy as np
from numba import njit

from s2gen.kernels.arma import sample_arma
from s2gen.kernels.augment import augment_row
from s2gen.kernels.imf import sample_imf
from s2gen.kernels.kernelsynth import sample_kernelsynth
from s2gen.kernels.mixture import sample_mixture
from s2gen.kernels.rng import choice, uniform_range
from s2gen.kernels.rounding import round_value
from s2gen.kernels.sarima import sample_sarima
from s2gen.kernels.seasonal import sample_trend_season

MIXTURE = 1
ARMA = 2
KERNEL_SYNTH = 3
TREND_SEASON = 4
IMF = 5
SARIMA = 6
SAMPLER_CODES = {  # 0 marks a padding channel
    "mixture": MIXTURE,
    "arma": ARMA,
    "kernel_synth": KERNEL_SYNTH,
    "trend_season": TREND_SEASON,
    "imf": IMF,
    "sarima": SARIMA,
}

_MAX_CHANNEL_DRAWS = 100


@njit(cache=True)
def draw_channel(state, family, p, noise, work, out):
    """Fill ``out`` (float64[L]) from sampler ``family``; False if it failed.

    ``noise`` and ``work`` are float64 scratch of ``p.sim_len`` entries.
    """
    if family == MIXTURE:
        sample_mixture(state, p.mix_kmax, p.mix_segments, out)
        return True
    if family == ARMA:
        return sample_arma(state, p.arma_pmax, p.arma_qmax, p.arma_burn, noise, work, out)
    if family == KERNEL_SYNTH:
        return sample_kernelsynth(
            state, p.ks_types, p.ks_params, p.ks_profiles, p.ks_max_kernels, out
        )
    if family == TREND_SEASON:
        sample_trend_season(state, p.ts_noise_max, out)
        return True
    if family == IMF:
        sample_imf(state, p.imf_noise_level, out)
        return True
    if family == SARIMA:
        return sample_sarima(
            state,
            p.sarima_max_order,
            p.sarima_max_seasonal,
            p.sarima_max_integration,
            p.sarima_periods,
            p.arma_burn,
            noise,
            work,
            out,
        )
    return False


@njit(cache=True)
def zscore(row):
    """Standardise ``row`` in place; False if it is constant or not finite."""
    mean = row.mean()
    var = 0.0
    for t in range(row.size):
        d = row[t] - mean
        var += d * d
    std = np.sqrt(var / row.size)
    if not (std > 0.0 and np.isfinite(std)):
        return False
    for t in range(row.size):
        row[t] = (row[t] - mean) / std
    return True


@njit(cache=True)
def varies(row):
    """True if ``row`` is finite and not constant."""
    low = np.inf
    high = -np.inf
    for v in row:
        if not np.isfinite(v):
            return False
        low = min(low, v)
        high = max(high, v)
    return high > low


@njit(cache=True)
def draw_excitation(state, p, n_in, noise, work, x, samplers, augmented):
    """Draw X (float64[>=n_in, L], first n_in rows filled) and its sampler codes.

    ``samplers`` (uint8[>=n_in]) receives the family of each channel and
    ``augmented`` (uint8[>=n_in]) the mask of augmentations applied to it
    (``s2gen.kernels.augment``; only when ``p.aug_any``). A channel whose draw
    fails or comes out constant is drawn again, at most ``_MAX_CHANNEL_DRAWS``
    times; returns False if that bound was hit.
    """
    for c in range(n_in):
        ok = False
        for _ in range(_MAX_CHANNEL_DRAWS):
            family = p.sampler_codes[choice(state, p.sampler_cum)]
            if not (draw_channel(state, family, p, noise, work, x[c]) and zscore(x[c])):
                continue
            if p.aug_any:
                augmented[c] = augment_row(state, p.aug_prob, x[c], noise, work)
                if not varies(x[c]):
                    continue
            samplers[c] = family
            ok = True
            break
        if not ok:
            return False
    scale = uniform_range(state, 0.0, p.scale_max) if p.scale_max > 0.0 else 1.0
    for c in range(n_in):
        row = x[c]
        for t in range(row.size):
            row[t] = round_value(row[t] * scale, p.round_mode)
    return True
