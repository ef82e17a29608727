"""The S2 store: a Zarr v3 group in format version 2 (docs/FORMAT.md).

This is the only module that imports zarr. It owns the format's names, dtypes,
chunking and attribute keys, the shard writer, the shard checks and the
read-only view.

Layout: every array is chunked along rows with the same ``chunk_rows`` and
sharded with the same ``shard_rows``, so shard k holds rows
``[k * shard_rows, (k + 1) * shard_rows)`` of every array. A worker owns whole
shards and writes each array's shard as one atomic object write, returning the
size and CRC-32C of every object it wrote; the single writer of records (the
process that holds the store's lock) then records them in ``_s2gen/objects``
and commits the shard by writing its row of ``_s2gen/shards``. A shard without
its commit is absent, and a committed shard whose objects no longer match
their records is damaged: a resume regenerates both, byte-identical, because a
pair depends only on (config, its seed).
"""

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from s2gen import __version__
from s2gen.config import AUGMENTATIONS, GenerateConfig, StoreConfig
from s2gen.file_writer import wait_for_write_back, write_atomically
from s2gen.generators.pairs import (
    Batch,
    node_program_length,
    program_length,
    token_length,
)
from s2gen.kernels.excitation import SAMPLER_CODES
from s2gen.kernels.pairs import STAT_NAMES
from s2gen.shard_encoding import shard_encoder
from s2gen.symbols.operators import OPERATORS
from s2gen.symbols.vocabulary import vocabulary

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # format 1: no object records; read, and upgraded by --verify
ATTRS_KEY = "s2gen"
BOOKKEEPING = "_s2gen"
COMMITS = f"{BOOKKEEPING}/shards"
OBJECTS = f"{BOOKKEEPING}/objects"
ARRAY_NAMES = ("x", "y", "n_in", "n_out", "expr", "tokens", "sampler", "seed")  # every store
CHECKSUM = "crc32c"
PRIVATE_PREFIX = ".s2gen-"  # lock, lease, creation marker, write probe: not store data
CREATING = f"{PRIVATE_PREFIX}creating"  # present while a creation has not finished
SERIES_ONLY_EMPTY = ("y", "n_out", "expr", "tokens")  # all fill in a series-only store


class StoreError(ValueError):
    """A store that cannot be used as asked; the message says why and the fix."""


class UnfinishedStoreError(StoreError):
    """A store whose creation was cut short; ``s2gen generate`` creates it again."""


def array_specs(config: GenerateConfig, n: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Shape and dtype of every array of a store of ``n`` rows."""
    c_in, c_out, L = config.max_input_dim, config.max_output_dim, config.length
    return {
        "x": ((n, c_in, L), config.dtype),
        "y": ((n, c_out, L), config.dtype),
        "n_in": ((n,), "uint8"),
        "n_out": ((n,), "uint8"),
        "expr": ((n, c_out), str),
        "tokens": ((n, c_out, token_length(config)), "int16"),
        "sampler": ((n, c_in), "uint8"),
        "seed": ((n,), "uint64"),
        **optional_array_specs(config, n),
    }


def optional_array_specs(config: GenerateConfig, n: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Arrays only some stores have: ``augment`` when the config augments inputs, and the
    graph's ``n_nodes``, ``node_parents``, ``node_expr``, ``output_node`` in graph mode."""
    specs: dict[str, tuple[tuple[int, ...], Any]] = {}
    if config.augment:
        specs["augment"] = ((n, config.max_input_dim), "uint8")
    if config.graph:
        specs["n_nodes"] = ((n,), "uint8")
        specs["node_parents"] = ((n, config.max_nodes), "uint32")
        specs["node_expr"] = ((n, config.max_nodes), str)
        specs["output_node"] = ((n, config.max_output_dim), "uint8")
    return specs


def array_names(config: GenerateConfig) -> tuple[str, ...]:
    """Names of the arrays of a store made with ``config`` (``ARRAY_NAMES`` first); also the
    order of the arrays in ``_s2gen/objects``."""
    return tuple(array_specs(config, 0))


def _stored_names(group) -> tuple[str, ...]:
    return array_names(GenerateConfig.from_stored(group.attrs[ATTRS_KEY]["config"]))


def batch_columns(batch: Batch, tokens_len: int) -> dict[str, np.ndarray]:
    """The rows of every array of the store for a generated batch (optional ones when present)."""
    columns = {
        "x": batch.x,
        "y": batch.y,
        "n_in": batch.n_in,
        "n_out": batch.n_out,
        "expr": batch.expressions(),
        "tokens": batch.tokens(tokens_len),
        "sampler": batch.sampler,
        "seed": batch.seeds,
    }
    if batch.augment is not None:
        columns["augment"] = batch.augment
    if batch.graph is not None:
        columns["n_nodes"] = batch.graph.n_nodes
        columns["node_parents"] = batch.graph.parent_masks()
        columns["node_expr"] = batch.graph.expressions()
        columns["output_node"] = batch.graph.output_node
    return columns


def _compressors(name: str, dtype: Any):
    if dtype is str:
        return "auto"  # zarr's vlen-utf8 default (zstd)
    if name == "none":
        return None
    if name == "zstd":
        return ZstdCodec(level=3)
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def operator_table() -> list[dict[str, Any]]:
    """The operator registry as stored in the attributes."""
    return [
        {"name": op.name, "code": op.code, "arity": op.arity, "infix": list(op.infix)}
        for op in OPERATORS
    ]


def _objects_attr(config: GenerateConfig) -> dict[str, Any]:
    return {"arrays": list(array_names(config)), "checksum": CHECKSUM}


def _header(config: GenerateConfig, store_config: StoreConfig, n: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "rows": n,
        "config": config.to_dict(),
        "store": store_config.to_dict(),
        "program_length": program_length(config),
        "token_length": token_length(config),
        "vocabulary": vocabulary(),
        "operators": operator_table(),
        "sampler_codes": {"padding": 0, **SAMPLER_CODES},
        "sampler_weights": config.family_weights(),
        "stat_names": list(STAT_NAMES),
        "objects": _objects_attr(config),
        "rows_written": 0,
        "acceptance": {},
        **optional_attributes(config),
    }


def optional_attributes(config: GenerateConfig) -> dict[str, Any]:
    """Attributes only some stores have: the bit of each augmentation with ``augment``, the
    node program length in graph mode."""
    attributes: dict[str, Any] = {}
    if config.augment:
        attributes["augment_bits"] = {name: 1 << k for k, name in enumerate(AUGMENTATIONS)}
    if config.graph:
        attributes["node_program_length"] = node_program_length(config)
    return attributes


def is_local(path: str) -> bool:
    """Whether ``path`` is a local directory (not an fsspec URL)."""
    return "://" not in str(path)


# --- Objects outside the arrays (markers, leases) -------------------------------------------


def _key_value(path: str):
    """A writable zarr store rooted at ``path`` (local directory or fsspec URL)."""
    if is_local(path):
        return zarr.storage.LocalStore(str(path))
    return zarr.storage.FsspecStore.from_url(str(path), read_only=False)


def read_object(path: str, key: str) -> bytes | None:
    """The bytes of object ``key`` of the store at ``path``; None if absent."""
    return _get(_key_value(path), key)


def write_object(path: str, key: str, data: bytes) -> None:
    """Write object ``key`` (atomically on a local store: zarr writes and renames)."""
    sync(_key_value(path).set(key, default_buffer_prototype().buffer.from_bytes(data)))


def delete_object(path: str, key: str) -> None:
    """Delete object ``key`` if it exists."""
    sync(_key_value(path).delete(key))


def _clear(path: str) -> None:
    """Delete everything at ``path`` except s2gen's private objects (lock, lease, marker)."""
    if is_local(path):
        for child in Path(path).iterdir():
            if child.name.startswith(PRIVATE_PREFIX):
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return
    store = _key_value(path)
    keys = sync(_collect(store.list()))
    sync(_gather(*(store.delete(k) for k in keys if not k.startswith(PRIVATE_PREFIX))))


async def _collect(iterator) -> list:
    return [item async for item in iterator]


async def _gather(*coroutines) -> list:
    return await asyncio.gather(*coroutines, return_exceptions=True)


# --- Creating, opening, resizing ------------------------------------------------------------


def check_output_path(path: str) -> None:
    """Refuse an output path that is a file or cannot be written, naming the fix.

    Creates the directory if needed and writes (then removes) a probe file,
    so permissions, read-only mounts and missing parents all show up here,
    before any work is done.
    """
    if not is_local(path):
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise StoreError(f"--out {path} is a file; give a directory path for the store")
    probe = p / f"{PRIVATE_PREFIX}write-test-{os.getpid()}"
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StoreError(
            f"--out {path} is not writable ({exc.strerror or exc}); choose a writable directory"
        ) from exc


def read_header(path: str) -> dict[str, Any] | None:
    """The s2gen attributes of the store at ``path``; None if nothing is there.

    Raises UnfinishedStoreError for a store whose creation did not finish, and
    StoreError for a path that holds something that is not an s2gen store of a
    format this version reads.
    """
    if is_local(path):
        p = Path(path)
        if not p.exists():
            return None
        if (p / CREATING).exists():
            raise _unfinished(path)
        if p.is_dir() and not any(not c.name.startswith(PRIVATE_PREFIX) for c in p.iterdir()):
            return None
        if not (p / "zarr.json").exists():
            raise StoreError(
                f"{path} exists and is not a Zarr store; choose another path "
                "(s2gen never deletes data it did not write)"
            )
    elif read_object(path, CREATING) is not None:
        raise _unfinished(path)
    try:
        group = zarr.open_group(path, mode="r")
    except FileNotFoundError:
        return None
    except Exception as exc:  # zarr raises several types for foreign data
        raise StoreError(f"{path} is not a readable Zarr v3 group: {exc}") from exc
    header = group.attrs.get(ATTRS_KEY)
    if not isinstance(header, dict) or "format_version" not in header:
        raise StoreError(f"{path} is a Zarr group but not an s2gen store (no '{ATTRS_KEY}' attrs)")
    if header["format_version"] not in READABLE_VERSIONS:
        raise StoreError(
            f"{path} is in s2gen store format {header['format_version']}; this version "
            f"({__version__}) reads formats {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return dict(header)


def _unfinished(path: str) -> UnfinishedStoreError:
    return UnfinishedStoreError(
        f"{path} is a store whose creation did not finish (the disk filled, or the run was "
        "stopped, while it was being created); re-run the same `s2gen generate` command to "
        "create it"
    )


def create(path: str, config: GenerateConfig, store_config: StoreConfig, n: int) -> None:
    """Create an empty store of ``n`` rows (every array pre-sized, no shard written).

    Resumable rather than atomic (object stores have no rename): the marker
    ``CREATING`` is written first and deleted last, and whatever else is at
    ``path`` is cleared once the marker is in place. Readers refuse a path
    with the marker (``read_header``); ``s2gen generate`` creates it again.
    Only call this on a path ``read_header`` found empty, unfinished, or an
    s2gen store to be overwritten.
    """
    write_object(path, CREATING, b"")
    _clear(path)
    group = zarr.open_group(
        path, mode="a", attributes={ATTRS_KEY: _header(config, store_config, n)}
    )
    for name, (shape, dtype) in array_specs(config, n).items():
        group.create_array(
            name,
            shape=shape,
            dtype=dtype,
            chunks=(store_config.chunk_rows,) + shape[1:],
            shards=(store_config.shard_rows,) + shape[1:],
            compressors=_compressors(store_config.compressor, dtype),
            fill_value="" if dtype is str else 0,
            config={"write_empty_chunks": True},
        )
    shards = shard_count(n, store_config.shard_rows)
    group.create_group(BOOKKEEPING).create_array(
        "shards",
        shape=(shards, len(STAT_NAMES)),
        dtype="int64",
        chunks=(1, len(STAT_NAMES)),
        fill_value=-1,
        compressors=None,
    )
    _create_object_records(group, shards, len(array_names(config)))
    delete_object(path, CREATING)


def _create_object_records(group, shards: int, arrays: int) -> None:
    """``_s2gen/objects``: (shards, arrays, 2) int64, one chunk per shard, -1 = no record."""
    group.require_group(BOOKKEEPING).create_array(
        "objects",
        shape=(shards, arrays, 2),
        dtype="int64",
        chunks=(1, arrays, 2),
        fill_value=-1,
        compressors=None,
    )


def add_object_records(path: str) -> None:
    """Give a format-1 store an empty ``_s2gen/objects`` (the first step of its upgrade)."""
    group = zarr.open_group(path, mode="r+")
    if OBJECTS not in group:
        _create_object_records(group, group[COMMITS].shape[0], len(_stored_names(group)))


def finish_upgrade(path: str) -> None:
    """Mark a format-1 store whose committed shards all have records as format 2.

    The attributes are written in the order a new store has them, so an
    upgraded store's files equal those of a store generated in format 2.
    """
    group = zarr.open_group(path, mode="r+")
    config = GenerateConfig.from_stored(group.attrs[ATTRS_KEY]["config"])
    header = dict(
        group.attrs[ATTRS_KEY], format_version=FORMAT_VERSION, objects=_objects_attr(config)
    )
    order = _header(config, StoreConfig.from_dict(header["store"]), int(header["rows"]))
    group.attrs[ATTRS_KEY] = {
        **{key: header[key] for key in order if key in header},
        **{key: value for key, value in header.items() if key not in order},
    }


def resize(path: str, n: int) -> None:
    """Change the row count of every array and of the header (for extension)."""
    group = zarr.open_group(path, mode="r+")
    for name in _stored_names(group):
        array = group[name]
        array.resize((n,) + array.shape[1:])
    shards = shard_count(n, group["seed"].shards[0])
    for name in (COMMITS, OBJECTS):
        if name in group:
            group[name].resize((shards,) + group[name].shape[1:])
    header = dict(group.attrs[ATTRS_KEY])
    header["rows"] = n
    group.attrs[ATTRS_KEY] = header


def shard_count(n: int, shard_rows: int) -> int:
    """Shards of a store of ``n`` rows."""
    return -(-n // shard_rows)


def shard_rows_range(k: int, n: int, shard_rows: int) -> tuple[int, int]:
    """Rows [start, stop) of shard k."""
    return k * shard_rows, min(n, (k + 1) * shard_rows)


# --- Writing shards -------------------------------------------------------------------------


def _shard_key(array, k: int) -> str:
    return f"{array.basename}/" + array.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1))


def _encode_through_zarr(array, start: int, stop: int, values) -> list | None:
    """Shard object of rows [start, stop) as zarr's own writer makes it (padding a short shard).

    The rows are written into an in-memory copy of the array, so the bytes are
    hashed before they reach the store, on every path.
    """
    memory = zarr.storage.MemoryStore()
    prototype = default_buffer_prototype()
    for key, buffer in array.metadata.to_buffer_dict(prototype).items():
        sync(memory.set(key, buffer))
    clone = zarr.open_array(memory, mode="r+")
    clone[start:stop] = values
    k = start // array.shards[0]
    data = sync(
        memory.get(clone.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1)), prototype)
    )
    return None if data is None else [data.to_bytes()]


def fingerprint(parts: list | None) -> tuple[int, int]:
    """(size in bytes, CRC-32C) of an object given as bytes-like parts; (0, 0) for no object."""
    if parts is None:
        return 0, 0
    crc = size = 0
    for part in parts:
        data = part if isinstance(part, bytes) else bytes(part)
        crc = google_crc32c.extend(crc, data)
        size += len(data)
    return size, crc


def _encode_shard(arrays: dict, k: int, columns: dict[str, np.ndarray]) -> dict[str, list | None]:
    """The shard-k object of every array for these rows: its parts, or None for no object."""
    shard_rows = arrays["seed"].shards[0]
    start, stop = shard_rows_range(k, arrays["seed"].shape[0], shard_rows)
    rows = len(columns["seed"])
    if stop - start != rows:
        raise ValueError(f"shard {k} holds {stop - start} rows, the batch has {rows}")
    objects = {}
    for name, array in arrays.items():
        encoder = shard_encoder(array.metadata.to_dict()) if stop - start == shard_rows else None
        if encoder is None:
            objects[name] = _encode_through_zarr(array, start, stop, columns[name])
        else:
            objects[name] = encoder.encode(np.asarray(columns[name], dtype=array.dtype))
    return objects


def _put_shard_object(group, path: str, key: str, parts: list | None) -> None:
    if parts is None:  # all fill: no object, as zarr does
        sync(group.store.delete(key))
    elif is_local(path):
        write_atomically(Path(path, key), parts)
    else:
        sync(group.store.set(key, default_buffer_prototype().buffer.from_bytes(b"".join(parts))))


def write_shard_objects(
    path: str, k: int, columns: dict[str, np.ndarray], only_changed: bool = False
) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Write every array's shard-k object from ``columns`` (its rows, in order); no commit.

    Each array's shard is one object write. Whole shards are encoded in one
    pass by ``s2gen.shard_encoding`` (the bytes zarr would write, without its
    per-chunk async pipeline), the last, short shard of a store through an
    in-memory zarr array; a local store gets them through
    ``s2gen.file_writer``. With ``only_changed``, an object whose stored bytes
    already equal the new ones is left alone (checking a store against a
    regeneration).

    Returns
    -------
    records : (size, CRC-32C) of each array's object, for ``ShardCommitter.commit``.
    written : the arrays whose objects were written (or deleted).
    """
    wait_for_write_back()  # the previous shard's, so at most one shard is in flight
    group = zarr.open_group(path, mode="r+")
    arrays = {name: group[name] for name in columns}  # each opening reads its metadata
    objects = _encode_shard(arrays, k, columns)
    records, written = {}, []
    for name, parts in objects.items():
        key = _shard_key(arrays[name], k)
        records[name] = fingerprint(parts)
        if only_changed:
            stored = _get(group.store, key)
            if stored == (None if parts is None else b"".join(bytes(p) for p in parts)):
                continue
        _put_shard_object(group, path, key, parts)
        written.append(name)
    return records, written


class ShardCommitter:
    """Records and commits shards of the store at ``path``: the single writer of records.

    ``commit(k, stats, records)`` writes shard k's row of ``_s2gen/objects``,
    then its row of ``_s2gen/shards`` (the commit). Opened once per run.
    """

    def __init__(self, path: str) -> None:
        group = zarr.open_group(path, mode="r+")
        self.commits, self.objects = group[COMMITS], group[OBJECTS]
        self.names = _stored_names(group)

    def commit(self, k: int, stats: dict[str, int], records: dict[str, tuple[int, int]]) -> None:
        self.objects[k] = np.array([records[name] for name in self.names], np.int64)
        self.commits[k] = np.array([stats[name] for name in STAT_NAMES], np.int64)


def write_shard(path: str, k: int, batch: Batch, tokens_len: int, stats: dict) -> None:
    """Write shard k from ``batch`` and commit it (for a caller that is the only writer)."""
    records, _ = write_shard_objects(path, k, batch_columns(batch, tokens_len))
    ShardCommitter(path).commit(k, stats, records)


def drop_shard(path: str, k: int) -> None:
    """Forget shard k (its commit first, then its objects) so that it is rewritten."""
    group = zarr.open_group(path, mode="r+")
    group[COMMITS][k] = -1
    for name in _stored_names(group):
        sync(group.store.delete(_shard_key(group[name], k)))


def clean_partial_files(path: str) -> int:
    """Delete stray ``*.partial`` files a killed writer left; return how many."""
    if not is_local(path) or not Path(path).exists():
        return 0
    count = 0
    for partial in Path(path).rglob("*.partial"):
        partial.unlink(missing_ok=True)
        count += 1
    return count


def update_header(path: str, **fields: Any) -> None:
    """Set fields of the s2gen attributes (single writer: the driver process)."""
    group = zarr.open_group(path, mode="r+")
    header = dict(group.attrs[ATTRS_KEY])
    header.update(fields)
    group.attrs[ATTRS_KEY] = header


def size_on_disk(path: str) -> int | None:
    """Bytes used by a local store (None for remote stores)."""
    if not is_local(path):
        return None
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# --- Records and checks ---------------------------------------------------------------------


def _rows(array) -> np.ndarray:
    """All rows of a one-chunk-per-row bookkeeping array; a row that does not decode is -1."""
    try:
        return array[:]
    except Exception:  # a damaged record: read row by row, keep what decodes
        out = np.full(array.shape, -1, array.dtype)
        for k in range(array.shape[0]):
            try:
                out[k] = array[k]
            except Exception:
                continue  # stays -1: the shard counts as not committed, or not recorded
        return out


def shard_records(path: str) -> dict[int, dict[str, int]]:
    """Acceptance counters of the committed shards, by shard index."""
    commits = _rows(zarr.open_group(path, mode="r")[COMMITS])
    return {
        int(k): dict(zip(STAT_NAMES, (int(v) for v in row), strict=True))
        for k, row in enumerate(commits)
        if row[0] >= 0
    }


def object_records(path: str) -> np.ndarray | None:
    """(shards, arrays, 2) int64: (size, CRC-32C) of each shard object; -1 where none is
    recorded. None for a format-1 store, which has no records.

    Raises StoreError when the records do not describe the store's arrays (their
    ``objects.arrays`` attribute or their width differs from ``array_names``).
    """
    group = zarr.open_group(path, mode="r")
    if OBJECTS not in group:
        return None
    names = list(_stored_names(group))
    listed = group.attrs[ATTRS_KEY].get("objects", {}).get("arrays", names)
    records = _rows(group[OBJECTS])
    if listed != names or records.shape[1:] != (len(names), 2):
        raise StoreError(
            f"{path}: its object records list arrays {listed} in a table of shape "
            f"{records.shape}, but the store has arrays {names}; the records were edited or "
            "written by another tool: regenerate the store with the `s2gen generate` command "
            "that made it (--overwrite)"
        )
    return records


def _get(store, key: str) -> bytes | None:
    buffer = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


def _sizes(store, keys: list[str]) -> list[int | None]:
    """Sizes of the objects ``keys`` (None where absent), fetched concurrently."""
    found = sync(_gather(*(store.getsize(k) for k in keys)))
    out = []
    for key, size in zip(keys, found, strict=True):
        if isinstance(size, FileNotFoundError):
            out.append(None)
        elif isinstance(size, BaseException):
            raise StoreError(f"cannot stat object {key}: {size}") from size
        else:
            out.append(int(size))
    return out


@dataclass(frozen=True)
class Damage:
    """A committed shard whose object of one array (None: of all) does not match its record."""

    shard: int
    array: str | None
    problem: str

    def __str__(self) -> str:
        where = "" if self.array is None else f", array {self.array}"
        return f"shard {self.shard}{where}: {self.problem}"


def _object_problem(key: str, recorded: tuple[int, int], size: int | None) -> str | None:
    """What is wrong with an object of ``size`` bytes (None: absent) against its record."""
    want = int(recorded[0])
    if size is None:
        return None if want == 0 else f"object {key} is missing (recorded {want} bytes)"
    if want == 0:
        return f"object {key} exists ({size} bytes) where no object was written (all fill)"
    if size != want:
        return f"object {key} is {size} bytes, recorded {want} (truncated or overwritten)"
    return None


def _expected_without_records(header: dict[str, Any], name: str) -> bool:
    """Whether a format-1 shard of array ``name`` has an object (all but all-fill arrays)."""
    return "source" not in header or name not in SERIES_ONLY_EMPTY


def check_shards(path: str, hashes: bool = False, shards=None) -> list[Damage]:
    """Every object of the committed ``shards`` (default: all) against the records.

    Sizes are always compared (one stat per object); ``hashes`` also reads
    every object and compares its CRC-32C. A format-1 store has no records:
    each expected object must exist and, with ``hashes``, decode.
    """
    group = zarr.open_group(path, mode="r")
    header = dict(group.attrs[ATTRS_KEY])
    committed = sorted(shard_records(path)) if shards is None else sorted(shards)
    records = object_records(path)
    names = _stored_names(group)
    arrays = {name: group[name] for name in names}
    keys = [(k, name, _shard_key(arrays[name], k)) for k in committed for name in names]
    sizes = _sizes(group.store, [key for _, _, key in keys])
    damages: list[Damage] = []
    for (k, name, key), size in zip(keys, sizes, strict=True):
        a = names.index(name)
        if records is None:
            if size is None and _expected_without_records(header, name):
                damages.append(Damage(k, name, f"object {key} is missing"))
            elif size is not None and hashes:
                problem = _decode_problem(arrays[name], k)
                if problem:
                    damages.append(Damage(k, name, f"object {key} does not decode ({problem})"))
            continue
        if (records[k] < 0).all():  # the shard's whole record row is missing
            if a == 0:
                damages.append(Damage(k, None, "no sizes and checksums recorded for its objects"))
            continue
        if (records[k, a] < 0).any():
            damages.append(Damage(k, name, "no size and checksum recorded for its object"))
            continue
        problem = _object_problem(key, records[k, a], size)
        if problem is None and hashes and size:
            crc = fingerprint([_get(group.store, key)])[1]
            if crc != records[k, a, 1]:
                problem = (
                    f"object {key} has CRC-32C {crc:08x}, recorded {int(records[k, a, 1]):08x} "
                    "(its bytes changed)"
                )
        if problem:
            damages.append(Damage(k, name, problem))
    return damages


def _decode_problem(array, k: int) -> str | None:
    shard_rows = array.shards[0]
    start, stop = shard_rows_range(k, array.shape[0], shard_rows)
    try:
        array[start:stop]
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# --- Reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One stored pair, trimmed to its real channels.

    x : [n_in, L]; y : [n_out, L]; expr : n_out strings; tokens : [n_out, T];
    sampler : [n_in] family codes; seed : the pair's own seed; augment : [n_in]
    augmentation masks (None in a store without augmentation); graph : the
    pair's DAG in a graph store (``Graph``), else None.
    """

    index: int
    x: np.ndarray
    y: np.ndarray
    expr: list[str]
    tokens: np.ndarray
    sampler: np.ndarray
    seed: int
    augment: np.ndarray | None = None
    graph: "Graph | None" = None


@dataclass(frozen=True)
class Graph:
    """The DAG of one stored graph pair (``--graph``).

    parents : per node, the parent indices in increasing order (empty for the
    inputs, nodes 0..n_in-1); expr : per node, its expression over its parents
    x_0.. (x_i = its i-th parent; "" for the inputs); output_node : the node of
    each output y_j.
    """

    parents: list[list[int]]
    expr: list[str]
    output_node: list[int]


def parents_of(mask: int) -> list[int]:
    """Node indices of the set bits of a ``node_parents`` mask, increasing."""
    return [j for j in range(32) if mask >> j & 1]


def header_config(path: str, header: dict[str, Any]) -> GenerateConfig:
    """The generation config a store's header records; StoreError if it does not validate.

    A header is data from whoever wrote the store: its ``expressions`` are
    read by s2gen's own parser like any other text (nothing runs).
    """
    try:
        return GenerateConfig.from_stored(header["config"])
    except ValueError as exc:
        raise StoreError(f"{path}: the generation config in its header is invalid: {exc}") from None


class S2Store:
    """Read-only view of an s2gen store (``s2gen.store.open``); no torch needed.

    ``len(store)`` is the number of rows; ``store[i]`` is a ``Pair``;
    ``store.read(start, stop)`` returns raw row-aligned arrays (fast when it
    covers whole chunks); ``store.config`` and ``store.vocabulary`` describe it.

    Every read of a committed shard is checked: the first read of each
    (array, shard) compares its object's size with the records (format 1:
    that it exists), and any error zarr raises while decoding becomes a
    StoreError naming the store, the array and the shard. A committed shard
    never reads as fill values.
    """

    def __init__(self, path: str, header: dict[str, Any], group) -> None:
        self.path = path
        self.header = header
        self.config = header_config(path, header)
        self.names = array_names(self.config)
        self.arrays = {name: group[name] for name in self.names}
        self.store_config = StoreConfig.from_dict(header["store"])
        self.vocabulary: list[str] = list(header["vocabulary"])
        self.chunk_rows = self.store_config.chunk_rows
        self.shard_rows = self.store_config.shard_rows
        self._store = group.store
        self._committed = set(shard_records(path))
        self._records = object_records(path) if header["format_version"] >= 2 else None
        self._checked: set[tuple[str, int]] = set()

    def __len__(self) -> int:
        return int(self.header["rows"])

    def __repr__(self) -> str:
        return f"S2Store({self.path!r}, rows={len(self)}, length={self.config.length})"

    def read(self, start: int, stop: int, fields=None) -> dict[str, np.ndarray]:
        """Rows [start, stop) of the named arrays (default: all of this store's).

        Raises StoreError naming the array and shard if a committed shard's
        object is missing, has the wrong size or does not decode.
        """
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows [{start}, {stop}) are outside the store's {len(self)} rows")
        fields = fields or self.names
        shards = range(start // self.shard_rows, -(-stop // self.shard_rows))
        for name in fields:
            for k in shards:
                if k in self._committed and (name, k) not in self._checked:
                    self._check_object(name, k)
        try:
            return {name: self.arrays[name][start:stop] for name in fields}
        except Exception as exc:
            raise self._locate(fields, shards, exc) from exc

    def _damaged(self, name: str, k: int, problem: str) -> StoreError:
        start, stop = shard_rows_range(k, len(self), self.shard_rows)
        fix = (
            "re-run the `s2gen generate` command that made it to regenerate the damaged shards"
            if "source" not in self.header
            else "write it again"
        )
        return StoreError(
            f"cannot read {self.path}: array {name}, shard {k} (rows {start}-{stop - 1}): "
            f"{problem}; `s2gen validate {self.path}` lists every damaged shard; {fix}"
        )

    def _check_object(self, name: str, k: int) -> None:
        key = _shard_key(self.arrays[name], k)
        (size,) = _sizes(self._store, [key])
        if self._records is None:
            if size is None and _expected_without_records(self.header, name):
                raise self._damaged(name, k, f"object {key} is missing")
        else:
            record = self._records[k, self.names.index(name)]
            problem = (
                "no size and checksum recorded for its object"
                if (record < 0).any()
                else _object_problem(key, record, size)
            )
            if problem:
                raise self._damaged(name, k, problem)
        self._checked.add((name, k))

    def _locate(self, fields, shards, exc: Exception) -> StoreError:
        """A StoreError naming the first (array, shard) whose read fails alone."""
        for name in fields:
            for k in shards:
                problem = _decode_problem(self.arrays[name], k)
                if problem:
                    key = _shard_key(self.arrays[name], k)
                    return self._damaged(name, k, f"object {key} does not decode ({problem})")
        return StoreError(f"cannot read {self.path} ({type(exc).__name__}: {exc})")

    def __getitem__(self, index: int) -> Pair:
        i = int(index)
        if i < 0:
            i += len(self)
        row = self.read(i, i + 1)
        m, n = int(row["n_in"][0]), int(row["n_out"][0])
        return Pair(
            index=i,
            x=row["x"][0, :m],
            y=row["y"][0, :n],
            expr=[str(s) for s in row["expr"][0, :n]],
            tokens=row["tokens"][0, :n],
            sampler=row["sampler"][0, :m],
            seed=int(row["seed"][0]),
            augment=row["augment"][0, :m] if "augment" in row else None,
            graph=_graph_of(row, n) if "n_nodes" in row else None,
        )

    def complete_shards(self) -> list[int]:
        """Indices of the shards that were committed when the store was opened."""
        return sorted(self._committed)

    @property
    def is_complete(self) -> bool:
        """True when every shard is committed."""
        return len(self.complete_shards()) == shard_count(len(self), self.shard_rows)

    @property
    def has_checksums(self) -> bool:
        """Whether the store records the size and CRC-32C of its objects (format 2)."""
        return self._records is not None


def _graph_of(row: dict[str, np.ndarray], n_out: int) -> Graph:
    nodes = int(row["n_nodes"][0])
    return Graph(
        parents=[parents_of(int(m)) for m in row["node_parents"][0, :nodes]],
        expr=[str(e) for e in row["node_expr"][0, :nodes]],
        output_node=[int(v) for v in row["output_node"][0, :n_out]],
    )


def open(path: str, allow_incomplete: bool = False) -> S2Store:  # noqa: A001
    """Open the store at ``path`` read-only.

    Raises StoreError if there is no s2gen store there, or if it is
    incomplete (a generation still running or killed) unless
    ``allow_incomplete``; rows of uncommitted shards then read as zeros.
    """
    header = read_header(path)
    if header is None:
        raise StoreError(f"no s2gen store at {path}; create one with `s2gen generate --out {path}`")
    view = S2Store(path, header, zarr.open_group(path, mode="r"))
    if not allow_incomplete and not view.is_complete:
        done = len(view.complete_shards())
        total = shard_count(len(view), view.shard_rows)
        raise StoreError(
            f"{path} is incomplete ({done} of {total} shards written); finish it by re-running "
            "the same `s2gen generate` command, or open it with allow_incomplete=True"
        )
    return view


DIFFUSION_SAMPLER = 255  # sampler code of a channel drawn by the OATS diffusion generator
