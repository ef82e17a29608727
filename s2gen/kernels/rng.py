"""Counter-free, explicitly seeded random numbers for Numba kernels.

Every row of a batch owns a 64-bit seed; a kernel turns it into a private
xoshiro256** state at the top of its ``prange`` iteration. Nothing is shared
between rows or threads, so a row's values do not depend on the thread count,
the worker count or where a run was resumed.

Why not ``np.random.seed`` inside Numba: the legacy MT19937 seed is 32 bits,
and 1e7 rows drawn from 2**32 seeds collide about 10,000 times (birthday
bound). 64-bit seeds make a collision in 1e7 rows a ~1e-6 event.

References
----------
Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2021):
xoshiro256** and the splitmix64 seeder.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always")
def splitmix64(x):
    """Bijective 64-bit mix of ``x`` (uint64 -> uint64)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def new_state(seed):
    """xoshiro256** state (uint64[4]) from a 64-bit seed via splitmix64."""
    state = np.empty(4, np.uint64)
    z = np.uint64(seed)
    for i in range(4):
        z = z + _GOLDEN
        state[i] = splitmix64(z)
    return state


@njit(cache=True, inline="always")
def next_u64(state):
    """Next uint64 of the xoshiro256** stream; advances ``state`` in place."""
    result = _rotl(state[1] * np.uint64(5), 7) * np.uint64(9)
    t = state[1] << np.uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = _rotl(state[3], 45)
    return result


@njit(cache=True, inline="always")
def uniform(state):
    """Float64 uniform on [0, 1) with 53 random bits."""
    return np.float64(next_u64(state) >> np.uint64(11)) * _TWO_POW_M53


@njit(cache=True, inline="always")
def uniform_range(state, low, high):
    """Float64 uniform on [low, high)."""
    return low + (high - low) * uniform(state)


@njit(cache=True, inline="always")
def randint(state, low, high):
    """Integer uniform on {low, ..., high} (both ends included).

    Uses the multiply-shift map of 53 random bits; the bias for ranges below
    2**20 is under 1e-10 and irrelevant here.
    """
    n = high - low + 1
    return low + np.int64(uniform(state) * n)


def _ziggurat_tables(layers: int = 128, r: float = 3.442619855899, v: float = 9.91256303526217e-3):
    """Layer edges X and ratios X[i+1]/X[i] of the normal ziggurat (Doornik 2005)."""
    x = np.zeros(layers + 1)
    f = np.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, layers):
        x[i] = np.sqrt(-2.0 * np.log(v / x[i - 1] + f))
        f = np.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1]


_ZIG_R = 3.442619855899
_ZIG_X, _ZIG_RATIO = _ziggurat_tables()


@njit(cache=True)
def _normal_tail(state, negative):
    while True:
        x = np.log(1.0 - uniform(state)) / _ZIG_R
        y = np.log(1.0 - uniform(state))
        if -2.0 * y >= x * x:
            return x - _ZIG_R if negative else _ZIG_R - x


@njit(cache=True, inline="always")
def normal(state):
    """Standard normal by the 128-layer ziggurat.

    Marsaglia & Tsang (2000) in Doornik's (2005) form: the layer index comes
    from the low 7 bits and the uniform from the top 53 bits of one draw; about
    99% of draws return after one multiply and one comparison.
    """
    while True:
        bits = next_u64(state)
        i = np.int64(bits & np.uint64(0x7F))
        u = 2.0 * (np.float64(bits >> np.uint64(11)) * _TWO_POW_M53) - 1.0
        if abs(u) < _ZIG_RATIO[i]:
            return u * _ZIG_X[i]
        if i == 0:
            return _normal_tail(state, u < 0.0)
        x = u * _ZIG_X[i]
        f0 = np.exp(-0.5 * (_ZIG_X[i] * _ZIG_X[i] - x * x))
        f1 = np.exp(-0.5 * (_ZIG_X[i + 1] * _ZIG_X[i + 1] - x * x))
        if f1 + uniform(state) * (f0 - f1) < 1.0:
            return x


@njit(cache=True)
def fill_normal(state, out):
    """Fill ``out`` (float64[n]) with standard normals."""
    for i in range(out.size):
        out[i] = normal(state)


@njit(cache=True, inline="always")
def choice(state, cumulative):
    """Index drawn with probabilities given by a cumulative weight vector.

    ``cumulative`` is nondecreasing with a positive last entry (it need not be
    normalised). Linear scan: the vectors here hold at most a few dozen entries.
    """
    u = uniform(state) * cumulative[cumulative.size - 1]
    for k in range(cumulative.size - 1):
        if u < cumulative[k]:
            return k
    return cumulative.size - 1
