"""Static augmentation of a training batch: jitter, then mixup (the OATS benchmark's baseline arm).

``augment_batch(series, rng)`` is the one entry point; the OATS hook calls it
in place of the generator (``OatsConfig.synthesis = "augment"``), so the
augmentation arm differs from the random-guide arm only in how the new rows
are made. Each row is z-scored, augmented and given back its own mean and
standard deviation (the batch holds raw windows; the encoder normalises each).

- jitter: plus N(0, sigma^2) per point of the z-scored row, sigma ~ U(0.01, 0.1)
  per row: the row's variance grows by sigma^2 times its own (Um et al., 2017;
  the range of the shared ``jitter`` augmentation of issue 18);
- mixup: each z-scored row becomes lam x_i + (1 - lam) x_perm(i), lam ~
  Beta(alpha, alpha) per row (alpha 1: uniform), perm a random permutation
  of the batch (Zhang et al., 2018; OATS's mixup branch mixes pairs 0.5/0.5).

TODO(issue 18): once ``s2gen.kernels.augment`` (branch i18-gen) is on main,
``jitter`` and ``mixup`` here must call its ``augment_series`` (jitter only)
and ``mixup`` instead of their own draws: one augmentation module for the
generators and for training.
"""

import numpy as np

JITTER_SIGMA = (0.01, 0.1)  # range of the per-row noise level, in row standard deviations
MIXUP_ALPHA = 1.0  # Beta(alpha, alpha) mixing weights: uniform on [0, 1]


def _zscore(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loc = x.mean(axis=1, keepdims=True)
    scale = x.std(axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    return (x - loc) / scale, loc, scale


def jitter(z: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """z (n, L) plus N(0, sigma_i^2) noise on every point of row i; sigma (n,)."""
    return z + sigma[:, None] * rng.standard_normal(z.shape)


def mixup(
    z: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix each row of z (n, L) with a random partner: lam_i z_i + (1 - lam_i) z_perm(i).

    Returns the mixed rows (n, L), lam (n,) ~ Beta(alpha, alpha) and perm (n,).
    """
    if not alpha > 0:
        raise ValueError(f"alpha={alpha!r} is invalid: mixup needs alpha > 0")
    lam = rng.beta(alpha, alpha, size=len(z))
    perm = rng.permutation(len(z))
    return lam[:, None] * z + (1.0 - lam[:, None]) * z[perm], lam, perm


def augment_batch(series: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Jitter then mixup of a batch ``series`` (n, L), each row back in its own scale.

    Returns (n, L) of the input dtype; the same ``rng`` state gives the same rows.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2 or not np.isfinite(x).all():
        raise ValueError(f"series has shape {x.shape}; give finite (n, L) rows with L >= 2")
    z, loc, scale = _zscore(x)
    z = jitter(z, rng.uniform(*JITTER_SIGMA, size=len(z)), rng)
    z, _, _ = mixup(z, MIXUP_ALPHA, rng)
    return (z * scale + loc).astype(np.asarray(series).dtype, copy=False)
