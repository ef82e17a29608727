"""Static batch augmentation (the OATS benchmark's jitter + mixup arm) against theory."""

import numpy as np
import pytest

from s2gen.pretrain.augmentation import augment_batch


def test_augment_batch_keeps_shape_dtype_and_each_rows_scale_and_is_seeded():
    rng = np.random.default_rng(3)
    loc = rng.normal(0, 100, size=64)
    scale = rng.uniform(0.1, 50, size=64)
    t = np.linspace(0, 6 * np.pi, 128)
    x = (np.sin(t)[None, :] * scale[:, None] + loc[:, None]).astype(np.float32)
    out = augment_batch(x, np.random.default_rng(4))
    assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, augment_batch(x, np.random.default_rng(4)))
    assert not np.array_equal(out, augment_batch(x, np.random.default_rng(5)))
    # every row is a mix of unit-variance sines (all in phase here) plus small noise, in its own
    # mean and scale: the mean stays and the spread is at most the row's own
    np.testing.assert_allclose(out.mean(axis=1), loc, atol=0.05 * scale.max())
    top = np.sqrt(1 + 0.1**2)  # jitter adds at most sigma = 0.1 of the row's scale
    assert np.all(out.std(axis=1) <= scale * top * 1.05)
    with pytest.raises(ValueError, match="finite"):
        augment_batch(np.full((2, 8), np.nan), np.random.default_rng(0))
