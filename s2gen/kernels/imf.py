"""Intrinsic-mode excitation: tones, chirps, envelopes, AM, sawtooth, trend, noise.

In the spirit of the reference's IntrinsicModeFunction sampler (shared/
reference/s2generator.md section 3) with its defects removed: no global RNG
(pysdkit reseeds numpy's to 42), and the noise level is the configured one.
On u = t / L (frequencies in cycles per series):

- 1..3 base components: A sin(2 pi (f u + beta u^2 / 2) + phi) (a linear chirp
  with probability 1/4, else beta = 0), f log-uniform on [1, L/8], with a
  Gaussian envelope (inverted with probability 0.15) with probability 0.4;
- 0..2 extra components: amplitude modulation
  A (1 + m cos(2 pi f_m u)) sin(2 pi f u + phi), or a sawtooth
  A (2 frac(f u + phi / 2 pi) - 1);
- with probability 0.35 a linear or quadratic trend of strength U(0.3, 1.5)
  times the signal's RMS;
- Gaussian noise with standard deviation ``noise_level`` times the RMS.
"""

import numpy as np
from numba import njit

from s2gen.kernels.rng import normal, randint, uniform, uniform_range


@njit(cache=True)
def add_tone(out, amplitude, freq, chirp, phase, center, width, inverted):
    """out += A sin(2 pi (f u + chirp u^2 / 2) + phase) x envelope (width 0: none)."""
    L = out.size
    for t in range(L):
        u = t / L
        value = amplitude * np.sin(2.0 * np.pi * (freq * u + 0.5 * chirp * u * u) + phase)
        if width > 0.0:
            z = (u - center) / width
            envelope = np.exp(-0.5 * z * z)
            value *= 1.0 - envelope if inverted else envelope
        out[t] += value


@njit(cache=True)
def add_am(out, amplitude, carrier, depth, modulation, phase):
    """out += A (1 + depth cos(2 pi modulation u)) sin(2 pi carrier u + phase)."""
    L = out.size
    for t in range(L):
        u = t / L
        envelope = 1.0 + depth * np.cos(2.0 * np.pi * modulation * u)
        out[t] += amplitude * envelope * np.sin(2.0 * np.pi * carrier * u + phase)


@njit(cache=True)
def add_sawtooth(out, amplitude, freq, phase):
    """out += A (2 frac(f u + phase / 2 pi) - 1)."""
    L = out.size
    for t in range(L):
        x = freq * t / L + phase / (2.0 * np.pi)
        out[t] += amplitude * (2.0 * (x - np.floor(x)) - 1.0)


@njit(cache=True)
def rms(x):
    """Root mean square of ``x``."""
    total = 0.0
    for v in x:
        total += v * v
    return np.sqrt(total / x.size)


@njit(cache=True)
def add_relative_noise(state, level, out):
    """out += N(0, (level x RMS(out))^2) per point."""
    s = level * rms(out)
    for t in range(out.size):
        out[t] += s * normal(state)


@njit(cache=True)
def _log_uniform(state, low, high):
    return np.exp(uniform_range(state, np.log(low), np.log(high)))


@njit(cache=True)
def sample_imf(state, noise_level, out):
    """Fill ``out`` (float64[L]) with one intrinsic-mode channel."""
    L = out.size
    f_max = max(2.0, L / 8.0)
    out[:] = 0.0
    for _ in range(randint(state, 1, 3)):
        amplitude = uniform_range(state, 0.2, 1.0)
        freq = _log_uniform(state, 1.0, f_max)
        chirp = uniform_range(state, -freq, freq) if uniform(state) < 0.25 else 0.0
        phase = uniform_range(state, 0.0, 2.0 * np.pi)
        width = uniform_range(state, 0.05, 0.35) if uniform(state) < 0.4 else 0.0
        center = uniform_range(state, 0.05, 0.95)
        inverted = uniform(state) < 0.15
        add_tone(out, amplitude, freq, chirp, phase, center, width, inverted)
    for _ in range(randint(state, 0, 2)):
        amplitude = uniform_range(state, 0.2, 1.0)
        phase = uniform_range(state, 0.0, 2.0 * np.pi)
        if uniform(state) < 0.5:
            carrier = _log_uniform(state, 2.0, f_max)
            add_am(
                out,
                amplitude,
                carrier,
                uniform_range(state, 0.2, 1.0),
                uniform_range(state, 0.5, 4.0),
                phase,
            )
        else:
            add_sawtooth(out, amplitude, _log_uniform(state, 1.0, max(2.0, L / 16.0)), phase)
    if uniform(state) < 0.35:
        strength = uniform_range(state, 0.3, 1.5) * rms(out)
        quadratic = uniform(state) < 0.5
        center = uniform(state)
        for t in range(L):
            u = t / L
            out[t] += strength * ((u - center) ** 2 * 4.0 if quadratic else 2.0 * (u - 0.5))
    add_relative_noise(state, noise_level, out)
