"""Encode one whole shard of a row-sharded Zarr v3 array in a single pass.

zarr writes a shard through its asynchronous codec pipeline, one task per
inner chunk, which costs s2gen's shard task about a quarter of its time
(benchmarks/BENCHMARKS.md, issue 3). For the layouts s2gen creates (chunks and
shards split along rows only; ``bytes`` or ``vlen-utf8``, then ``blosc`` or
``zstd`` or nothing; the shard index as ``bytes`` + ``crc32c`` at the end)
this module produces the same bytes directly with numcodecs: the encoded inner
chunks in order, then the index of (offset, nbytes) uint64 pairs and its
CRC-32C. Like zarr 3.1, it leaves out inner chunks that hold only the fill
value (index entry: two all-ones words) and writes no object for a shard that
is all fill. ``tests/test_shard_encoding.py`` checks byte equality with zarr's
own writer for every compressor and column.

Source: the Zarr v3 ``sharding_indexed`` codec specification
(zarr-specs, v3/codecs/sharding-indexed).
"""

from collections.abc import Callable
from typing import Any

import google_crc32c
import numcodecs
import numpy as np

_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_ABSENT = np.iinfo(np.uint64).max  # index word of a chunk left out

Encode = Callable[[Any], Any]  # buffer or array in, bytes-like out


def _little_endian(chunk: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(chunk, chunk.dtype.newbyteorder("<")).reshape(-1))


def _vlen_utf8(chunk: np.ndarray) -> bytes:
    return numcodecs.VLenUTF8().encode(np.asarray(chunk, dtype=object))


def _array_to_bytes(codec: dict[str, Any]) -> Encode | None:
    if codec["name"] == "bytes":
        return (
            _little_endian
            if codec.get("configuration", {}).get("endian", "little") == "little"
            else None
        )
    if codec["name"] == "vlen-utf8":
        return _vlen_utf8
    return None


def _bytes_to_bytes(codec: dict[str, Any]) -> Encode | None:
    config = codec.get("configuration", {})
    if codec["name"] == "blosc":
        blosc = numcodecs.Blosc(
            cname=config["cname"],
            clevel=config["clevel"],
            shuffle=_SHUFFLE[config["shuffle"]],
            blocksize=config["blocksize"],
            typesize=config["typesize"],
        )
        return lambda data: blosc.encode(np.frombuffer(data, np.uint8))
    if codec["name"] == "zstd":
        return numcodecs.Zstd(level=config["level"], checksum=config["checksum"]).encode
    return None


class ShardEncoder:
    """Encodes whole shards of one array; build it with ``shard_encoder``.

    Parameters
    ----------
    chunk_rows : rows per inner chunk.
    to_bytes : the array-to-bytes step for one chunk.
    compress : the bytes-to-bytes steps, in order.
    is_fill : whether a chunk holds only the fill value.
    """

    def __init__(
        self,
        chunk_rows: int,
        to_bytes: Encode,
        compress: list[Encode],
        is_fill: Callable[[np.ndarray], bool],
    ) -> None:
        self.chunk_rows = chunk_rows
        self.to_bytes = to_bytes
        self.compress = compress
        self.is_fill = is_fill

    def encode(self, rows: np.ndarray) -> list | None:
        """The shard object for ``rows``, (shard_rows, ...) in the array dtype.

        Returns its pieces in order (bytes-like; write them one after the
        other, or join them), or None if every chunk is fill.
        """
        if len(rows) % self.chunk_rows:
            raise ValueError(
                f"a shard of {len(rows)} rows is not whole chunks of {self.chunk_rows}"
            )
        parts = []
        index = np.full((len(rows) // self.chunk_rows, 2), _ABSENT, dtype="<u8")  # (offset, nbytes)
        offset = 0
        for i, start in enumerate(range(0, len(rows), self.chunk_rows)):
            chunk = rows[start : start + self.chunk_rows]
            if self.is_fill(chunk):
                continue
            data = self.to_bytes(chunk)
            for step in self.compress:
                data = step(data)
            size = memoryview(data).nbytes
            index[i] = offset, size
            offset += size
            parts.append(data)
        if not parts:
            return None
        index_bytes = index.tobytes()
        checksum = np.array([google_crc32c.value(index_bytes)], dtype="<u4").tobytes()
        return [*parts, index_bytes, checksum]


def _all_zero_bits(chunk: np.ndarray) -> bool:
    """Whether every bit is 0 (so -0.0 is not the fill 0.0, as in zarr)."""
    raw = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8)
    if raw[:64].any():  # the usual case, decided without reading the chunk
        return False
    words = len(raw) // 8
    return not (raw[: words * 8].view(np.uint64).any() or raw[words * 8 :].any())


def _all_empty_strings(chunk: np.ndarray) -> bool:
    return bool(np.all(chunk == ""))


def shard_encoder(metadata: dict[str, Any]) -> ShardEncoder | None:
    """A one-pass encoder for whole shards of the array with this v3 ``metadata``.

    ``metadata`` is the array's ``zarr.json`` document. Returns None for a
    layout this module does not reproduce (the caller then writes through zarr).
    """
    codecs = metadata["codecs"]
    if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
        return None
    sharding = codecs[0]["configuration"]
    chunk_shape = sharding["chunk_shape"]
    if list(chunk_shape[1:]) != list(metadata["shape"][1:]):
        return None  # chunks split more than the rows
    index_codecs = [c["name"] for c in sharding["index_codecs"]]
    index_endian = sharding["index_codecs"][0].get("configuration", {}).get("endian", "little")
    if sharding.get("index_location", "end") != "end" or index_codecs != ["bytes", "crc32c"]:
        return None
    if index_endian != "little":
        return None
    is_fill = {0: _all_zero_bits, "": _all_empty_strings}.get(metadata["fill_value"])
    to_bytes = _array_to_bytes(sharding["codecs"][0])
    compress = [_bytes_to_bytes(c) for c in sharding["codecs"][1:]]
    if is_fill is None or to_bytes is None or any(step is None for step in compress):
        return None
    return ShardEncoder(chunk_shape[0], to_bytes, compress, is_fill)
