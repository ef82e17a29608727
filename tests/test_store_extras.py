"""Stores with the optional arrays (augmentation masks, graphs): format, identity, resume."""

import numpy as np
import zarr

from s2gen import store as s2store
from s2gen.config import GenerateConfig
from tests.test_store_cli import MULTI, generate, run

AUGMENT = ["--augment", "jitter=0.5,time_warp=0.3,frequency=0.3,scaling=0.5", "--samplers",
           "sarima=1,arma=1"]  # fmt: skip


def read_every_array(path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in group.array_keys()}


def assert_same_arrays(a, b):
    da, db = read_every_array(a), read_every_array(b)
    assert da.keys() == db.keys()
    for name in da:
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)


def test_augmented_store_records_masks_validates_and_is_identical_for_any_worker_count(tmp_path):
    one, two, grown = tmp_path / "one.zarr", tmp_path / "two.zarr", tmp_path / "grown.zarr"
    generate(one, 200, *MULTI, *AUGMENT, workers=1)
    generate(two, 200, *MULTI, *AUGMENT, workers=2)
    generate(grown, 100, *MULTI, *AUGMENT, workers=1)  # then resumed to 200
    generate(grown, 200, *MULTI, *AUGMENT, workers=2)
    assert_same_arrays(one, two)
    assert_same_arrays(one, grown)
    group = zarr.open_group(str(one), mode="r")
    assert set(group.array_keys()) == set(s2store.ARRAY_NAMES) | {"augment"}
    header = group.attrs["s2gen"]
    assert header["augment_bits"]["jitter"] == 32 and header["augment_bits"]["time_warp"] == 1
    assert dict(GenerateConfig.from_dict(header["config"]).augment)["jitter"] == 0.5
    masks, n_in = group["augment"][:], group["n_in"][:]
    assert masks.shape == (200, 2) and masks.dtype == np.uint8
    real = np.arange(2)[None, :] < n_in[:, None]
    assert masks[real].any() and not masks[~real].any()
    assert not (masks & 0b1010).any()  # window_slice and magnitude_warp were not asked for
    assert "OK: 200 rows" in run("validate", one, "--sample", 0).output
    shown = run("show", one, 3).output
    assert "augmented: x_0=" in shown


def test_validate_catches_a_tampered_augmentation_mask(tmp_path):
    path = tmp_path / "s.zarr"
    generate(path, 64, *AUGMENT)
    group = zarr.open_group(str(path), mode="r+")
    masks = group["augment"][:]
    masks[5, 0] ^= 1 << 5
    group["augment"][:] = masks
    result = run("validate", path, "--sample", 0, expect=1)
    assert "row 5: augment masks differ" in result.output


def test_bad_augment_option_is_named(tmp_path):
    result = run("generate", "--n", 10, "--out", tmp_path / "a", "--augment", "jiter=1", expect=2)
    assert "augment" in result.output and "time_warp" in result.output
    result = run("generate", "--n", 10, "--out", tmp_path / "a", "--augment", "jitter", expect=2)
    assert "NAME=WEIGHT" in result.output
