"""Symbol tokens as the pretraining model sees them: constants canonicalised.

A store spells a constant with five tokens (sign, three mantissa digits,
exponent: ``- 0 9 2 E-3``), so about three quarters of a store's tokens are
constant digits and a masked-token loss mostly predicts digits. Pretraining
reads every constant as one token instead: its sign and decade,
``floor(log10 |c|)`` (``<-1e-2>`` for -0.092). Operators and variables keep
their store ids.

Two expressions that differ only in their constants share a *skeleton*
(their tokens with every constant replaced by one marker); affine variants
``a * f + b`` of one f do, so contrastive learning never uses one as the
other's negative (``skeleton_ids``).

Layout of the pretraining vocabulary: the store's tokens (ids unchanged),
then ``<+1e-8>`` .. ``<+1e+9>`` and ``<-1e-8>`` .. ``<-1e+9>``.
"""

import numpy as np

from s2gen.kernels.constants import EXP_MAX, EXP_MIN
from s2gen.symbols import vocabulary as store_vocab

DECADES = tuple(range(EXP_MIN, EXP_MAX + 3))  # |c| = m * 10^e, m in 1..999
DECADE_TOKENS = tuple(f"<{sign}1e{k:+d}>" for sign in "+-" for k in DECADES)
COVERAGE = 0.99  # share of expressions that must fit when max_tokens is sized automatically
_HASH_BASE = np.uint64(0x100000001B3)  # FNV-64 prime, base of the sequence hash


def pretraining_vocabulary(stored: list[str]) -> list[str]:
    """The store's vocabulary followed by the signed decade tokens.

    Raises ValueError if ``stored`` is not the vocabulary this version writes
    (ids of signs, digits and exponents must be where the canonicaliser expects them).
    """
    if list(stored) != store_vocab.vocabulary()[: len(stored)] or len(stored) < len(
        store_vocab.TOKENS
    ):
        raise ValueError(
            "the store's token vocabulary differs from this s2gen's; regenerate the store"
        )
    return list(stored) + list(DECADE_TOKENS)


def canonical_tokens(tokens: np.ndarray, n_stored: int) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite every 5-token constant as its signed-decade token; padding moves to the end.

    Parameters
    ----------
    tokens : (k, T) integer store token ids, 0 = padding.
    n_stored : size of the store vocabulary (the decade ids start there).

    Returns
    -------
    canonical : (k, T) int16, same width, padded with 0.
    lengths : (k,) int64, the real tokens of each row.
    """
    t = np.asarray(tokens, np.int64)
    k, width = t.shape
    is_sign = (t == store_vocab.PLUS) | (t == store_vocab.MINUS)
    out = np.zeros((k, width), np.int16)
    if width == 0:
        return out, np.zeros(k, np.int64)
    # a constant's digits and exponent follow its sign; the sign becomes the constant's token
    follower = np.zeros_like(is_sign)
    for lag in range(1, 5):
        follower[:, lag:] |= is_sign[:, :-lag]
    keep = (t != store_vocab.PAD) & ~follower
    pad = np.zeros((k, 4), np.int64)
    ahead = np.concatenate([t, pad], axis=1)  # (k, T + 4)
    digits = [ahead[:, 1 + i : 1 + i + width] - store_vocab.DIGIT_BASE for i in range(3)]
    exponent = ahead[:, 4 : 4 + width] - store_vocab.EXP_BASE + EXP_MIN
    mantissa = digits[0] * 100 + digits[1] * 10 + digits[2]
    scale = np.where(mantissa >= 100, 2, np.where(mantissa >= 10, 1, 0))  # floor(log10 m)
    negative = (t == store_vocab.MINUS).astype(np.int64)
    decade_id = n_stored + negative * len(DECADES) + (exponent + scale - DECADES[0])
    ids = np.where(is_sign, decade_id, np.where(keep, t, -1))  # (k, T), -1 = dropped
    real = ids >= 0
    order = np.argsort(~real, axis=1, kind="stable")  # real tokens first, in order
    out[:] = np.take_along_axis(np.where(real, ids, 0), order, axis=1)
    lengths = real.sum(axis=1)
    return out, lengths.astype(np.int64)


def skeleton_ids(canonical: np.ndarray, n_stored: int) -> np.ndarray:
    """A 63-bit hash per row of canonical tokens with every constant as one marker.

    Rows equal up to their constants (sign and decade included) get equal ids.
    canonical : (k, T) from ``canonical_tokens``. Returns (k,) int64 >= 0.
    """
    t = np.asarray(canonical).astype(np.int64)
    marked = np.where(t >= n_stored, n_stored, t).astype(np.uint64)  # any constant -> one id
    powers = _HASH_BASE ** np.arange(marked.shape[-1], dtype=np.uint64)  # wraps mod 2^64
    with np.errstate(over="ignore"):
        h = (marked * powers).sum(axis=-1, dtype=np.uint64)
    return (h >> np.uint64(1)).astype(np.int64)


def covering_length(lengths: np.ndarray, coverage: float = COVERAGE) -> int:
    """Smallest multiple of 8 that holds at least ``coverage`` of the rows' token lengths."""
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return 8
    need = int(np.sort(lengths)[int(np.ceil(coverage * lengths.size)) - 1])
    return max(8, -(-need // 8) * 8)
