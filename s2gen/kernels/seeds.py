"""Per-row seeds: a pure function of (base seed, row index)."""

import numpy as np
from numba import njit

from s2gen.kernels.rng import splitmix64


@njit(cache=True)
def _row_seeds(base, start, stop):
    out = np.empty(stop - start, np.uint64)
    key = splitmix64(np.uint64(base))
    for i in range(start, stop):
        out[i - start] = splitmix64(key + np.uint64(i))
    return out


def row_seeds(base_seed: int, start: int, stop: int) -> np.ndarray:
    """uint64 seeds of rows ``start..stop-1`` of a store made with ``base_seed``.

    seed_i = splitmix64(splitmix64(base_seed) + i): distinct rows get distinct
    seeds (splitmix64 is a bijection), and the seed of a row never depends on
    how the rows are split into batches, shards or workers.
    """
    if not 0 <= start <= stop:
        raise ValueError(f"row range [{start}, {stop}) is invalid: need 0 <= start <= stop")
    if not 0 <= base_seed < 1 << 64:
        raise ValueError(f"base_seed={base_seed} is invalid: it must be in [0, 2**64)")
    return _row_seeds(np.uint64(base_seed), start, stop)
