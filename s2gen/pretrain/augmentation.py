"""Static augmentation of a training batch: jitter, then mixup (the OATS benchmark's baseline arm).

``augment_batch(series, rng)`` is the one entry point; the OATS hook calls it
in place of the generator (``OatsConfig.synthesis = "augment"``), so the
augmentation arm differs from the random-guide arm only in how the new rows
are made. Each row is z-scored, augmented and given back its own mean and
standard deviation (the batch holds raw windows; the encoder normalises each).

- jitter: plus N(0, sigma^2) per point of the z-scored row, sigma ~ U(0.01, 0.1)
  per row (Um et al., 2017): the ``jitter`` augmentation of the generators
  (``s2gen.kernels.augment.augment_series``, one row seed per row drawn from ``rng``);
- mixup: each z-scored row becomes lam x_i + (1 - lam) x_perm(i), lam ~
  Beta(alpha, alpha) per row (alpha 1: uniform), perm a random permutation
  of the batch (``s2gen.kernels.augment.mixup``; Zhang et al., 2018; OATS's
  mixup branch mixes pairs 0.5/0.5).
"""

import numpy as np

from s2gen.kernels.augment import augment_series, mixup
from s2gen.threads import torch_threads_kept

MIXUP_ALPHA = 1.0  # Beta(alpha, alpha) mixing weights: uniform on [0, 1]


def _zscore(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loc = x.mean(axis=1, keepdims=True)
    scale = x.std(axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    return (x - loc) / scale, loc, scale


@torch_threads_kept()  # called in the training process (the OATS hook)
def augment_batch(series: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Jitter then mixup of a batch ``series`` (n, L), each row back in its own scale.

    Returns (n, L) of the input dtype; the same ``rng`` state gives the same rows.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2 or not np.isfinite(x).all():
        raise ValueError(f"series has shape {x.shape}; give finite (n, L) rows with L >= 2")
    z, loc, scale = _zscore(x)
    seeds = rng.integers(0, np.iinfo(np.int64).max, size=len(z)).astype(np.uint64)
    z, _ = augment_series(z, {"jitter": 1.0}, seeds)
    z, _, _ = mixup(z, MIXUP_ALPHA, rng)
    return (z * scale + loc).astype(np.asarray(series).dtype, copy=False)
