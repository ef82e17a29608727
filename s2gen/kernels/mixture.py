"""Mixture-distribution excitation (SymTime paper, section 3.1).

k ~ U{1..k_max} components with weights w_j ~ U(0, 1), normalised. Component j
is N(mu_j, sigma_j^2) with mu_j ~ N(0, 1), sigma_j ~ U(0, 1), or (with
probability 1/2) the uniform law between 0 and mu_j. In "mixture" mode every
time step draws its own component from w, so the series is i.i.d. from the
mixture; in "segments" mode the component counts are the same multinomial but
laid out as contiguous blocks in component order (the reference package's
layout, shared/reference/s2generator.md section 3).
"""

import numpy as np
from numba import njit

from s2gen.kernels.rng import choice, normal, randint, uniform

MAX_COMPONENTS = 64


@njit(cache=True)
def draw_component_value(state, is_gauss, mu, sigma):
    """One value of component (is_gauss, mu, sigma)."""
    if is_gauss:
        return mu + sigma * normal(state)
    return mu * uniform(state)


@njit(cache=True)
def fill_mixture(state, cumulative, is_gauss, mu, sigma, segments, out):
    """Fill ``out`` (float64[L]) from given mixture parameters.

    ``cumulative`` holds the cumulative (unnormalised) component weights;
    ``is_gauss``, ``mu``, ``sigma`` describe each component.
    """
    k = cumulative.size
    L = out.size
    if not segments:
        for t in range(L):
            j = choice(state, cumulative)
            out[t] = draw_component_value(state, is_gauss[j], mu[j], sigma[j])
        return
    counts = np.zeros(k, np.int64)
    for _ in range(L):
        counts[choice(state, cumulative)] += 1
    t = 0
    for j in range(k):
        for _ in range(counts[j]):
            out[t] = draw_component_value(state, is_gauss[j], mu[j], sigma[j])
            t += 1


@njit(cache=True)
def sample_mixture(state, k_max, segments, out):
    """Fill ``out`` (float64[L]) with one mixture channel with freshly drawn parameters."""
    k = randint(state, 1, k_max)
    cumulative = np.empty(k)
    is_gauss = np.empty(k, np.bool_)
    mu = np.empty(k)
    sigma = np.empty(k)
    total = 0.0
    for j in range(k):
        total += uniform(state)
        cumulative[j] = total
        is_gauss[j] = uniform(state) < 0.5
        mu[j] = normal(state)
        sigma[j] = uniform(state)
    if total <= 0.0:  # every weight drew exactly 0: fall back to equal weights
        for j in range(k):
            cumulative[j] = j + 1.0
    fill_mixture(state, cumulative, is_gauss, mu, sigma, segments, out)
