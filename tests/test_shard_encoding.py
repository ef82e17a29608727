"""The one-pass shard writer produces exactly the bytes zarr's own writer does."""

from pathlib import Path

import numpy as np
import pytest
import zarr

from s2gen import store
from s2gen.config import GenerateConfig, StoreConfig
from s2gen.generators.pairs import generate_batch, token_length
from s2gen.kernels.seeds import row_seeds
from s2gen.shard_encoding import shard_encoder

CONFIG = GenerateConfig(length=48, max_input_dim=3, max_output_dim=2, seed=11)


def _columns(batch):
    return {
        "x": batch.x,
        "y": batch.y,
        "n_in": batch.n_in,
        "n_out": batch.n_out,
        "expr": batch.expressions(),
        "tokens": batch.tokens(token_length(CONFIG)),
        "sampler": batch.sampler,
        "seed": batch.seeds,
    }


@pytest.mark.parametrize("compressor", ["lz4", "zstd", "none"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_one_pass_shard_bytes_equal_zarrs_writer(tmp_path, compressor, dtype):
    config = CONFIG.replace(dtype=dtype)
    layout = StoreConfig(chunk_rows=16, shard_rows=64, compressor=compressor)
    n = 128
    batch = generate_batch(config, row_seeds(config.seed, 64, 128))
    lean, through_zarr = str(tmp_path / "lean.zarr"), str(tmp_path / "zarr.zarr")
    for path in (lean, through_zarr):
        store.create(path, config, layout, n)
    store.write_shard(lean, 1, batch, token_length(config), batch.stat_totals())
    group = zarr.open_group(through_zarr, mode="r+")
    for name, column in _columns(batch).items():
        group[name][64:128] = column
        assert shard_encoder(group[name].metadata.to_dict()) is not None, name
        key = Path(
            name,
            *group[name].metadata.encode_chunk_key((1,) + (0,) * (group[name].ndim - 1)).split("/"),
        )
        written, expected = (Path(p, key).read_bytes() for p in (lean, through_zarr))
        assert written == expected, name
    view = store.open(lean, allow_incomplete=True)
    np.testing.assert_array_equal(view.read(64, 128)["x"], batch.x.astype(dtype))


def test_a_short_last_shard_has_the_bytes_zarrs_writer_gives_it(tmp_path):
    layout = StoreConfig(chunk_rows=16, shard_rows=64)
    n = 100  # shard 1 holds rows 64-99: two whole chunks, one short, one past the end
    batch = generate_batch(CONFIG, row_seeds(CONFIG.seed, 64, n))
    lean, through_zarr = str(tmp_path / "lean.zarr"), str(tmp_path / "zarr.zarr")
    for path in (lean, through_zarr):
        store.create(path, CONFIG, layout, n)
    store.write_shard(lean, 1, batch, token_length(CONFIG), batch.stat_totals())
    group = zarr.open_group(through_zarr, mode="r+")
    records = zarr.open_group(lean, mode="r")[store.OBJECTS][1]
    for a, (name, column) in enumerate(_columns(batch).items()):
        group[name][64:n] = column
        key = group[name].metadata.encode_chunk_key((1,) + (0,) * (group[name].ndim - 1))
        written, expected = (
            Path(p, name, *key.split("/")).read_bytes() for p in (lean, through_zarr)
        )
        assert written == expected, name
        assert tuple(records[a]) == store.fingerprint([expected]), name


@pytest.mark.parametrize("name", ["tokens", "x", "expr"])
def test_fill_only_chunks_and_shards_are_left_out_as_zarr_does(tmp_path, name):
    layout = StoreConfig(chunk_rows=16, shard_rows=32)
    path = str(tmp_path / "s.zarr")
    store.create(path, CONFIG, layout, 64)
    array = zarr.open_group(path, mode="r+")[name]
    encoder = shard_encoder(array.metadata.to_dict())
    fill = "" if name == "expr" else 0
    rows = np.full((64,) + array.shape[1:], fill, array.dtype)
    rows[48:] = "x0" if name == "expr" else 3  # shard 1: first chunk (rows 32-47) fill, second not
    array[:] = rows
    objects = [
        Path(
            path, name, *array.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1)).split("/")
        )
        for k in (0, 1)
    ]
    assert not objects[0].exists() and encoder.encode(rows[:32]) is None
    assert b"".join(encoder.encode(rows[32:])) == objects[1].read_bytes()


def test_layouts_it_does_not_reproduce_fall_back_to_zarr():
    metadata = {
        "shape": [64, 4],
        "fill_value": 0,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": [16, 4],
                    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ],
    }
    assert shard_encoder(metadata) is not None
    sharding = metadata["codecs"][0]["configuration"]
    for change in (
        {"index_location": "start"},
        {"chunk_shape": [16, 2]},
        {"codecs": [{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 1}}]},
        {"codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]},
        {"index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}]},
    ):
        changed = {
            **metadata,
            "codecs": [{**metadata["codecs"][0], "configuration": {**sharding, **change}}],
        }
        assert shard_encoder(changed) is None, change
    assert shard_encoder({**metadata, "codecs": sharding["codecs"]}) is None
    assert shard_encoder({**metadata, "fill_value": 7}) is None


def test_negative_zero_is_data_not_fill_as_in_zarr(tmp_path):
    path = str(tmp_path / "s.zarr")
    store.create(path, CONFIG, StoreConfig(chunk_rows=16, shard_rows=32), 32)
    array = zarr.open_group(path, mode="r+")["x"]
    rows = np.full((32,) + array.shape[1:], -0.0, array.dtype)
    array[:] = rows
    written = Path(path, "x", "c", "0", "0", "0").read_bytes()
    assert b"".join(shard_encoder(array.metadata.to_dict()).encode(rows)) == written
