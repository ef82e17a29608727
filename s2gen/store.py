"""The S2 store: a Zarr v3 group in format version 1 (docs/FORMAT.md).

This is the only module that imports zarr. It owns the format's names, dtypes,
chunking and attribute keys, the shard writer and the read-only view.

Layout: every array is chunked along rows with the same ``chunk_rows`` and
sharded with the same ``shard_rows``, so shard k holds rows
``[k * shard_rows, (k + 1) * shard_rows)`` of every array. A worker owns whole
shards and writes each array's shard as one atomic object write, then commits
the shard by writing its row of ``_s2gen/shards``. A shard without its commit
is absent: a resume regenerates it, and the rows are byte-identical because a
pair depends only on (config, its seed).
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    sampler_weights,
    token_length,
)
from s2gen.kernels.excitation import SAMPLER_CODES
from s2gen.kernels.pairs import STAT_NAMES
from s2gen.shard_encoding import shard_encoder
from s2gen.symbols.operators import OPERATORS
from s2gen.symbols.vocabulary import vocabulary

FORMAT_VERSION = 1
ATTRS_KEY = "s2gen"
BOOKKEEPING = "_s2gen"
COMMITS = f"{BOOKKEEPING}/shards"
ARRAY_NAMES = ("x", "y", "n_in", "n_out", "expr", "tokens", "sampler", "seed")  # every store


class StoreError(ValueError):
    """A store that cannot be used as asked; the message says why and the fix."""


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
    """Names of the arrays of a store made with ``config`` (``ARRAY_NAMES`` first)."""
    return tuple(array_specs(config, 0))


def _stored_names(group) -> tuple[str, ...]:
    return array_names(GenerateConfig.from_dict(group.attrs[ATTRS_KEY]["config"]))


def shard_columns(batch: Batch, tokens_len: int) -> dict[str, np.ndarray]:
    """The arrays of ``batch`` under their store names (optional ones when present)."""
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
        "sampler_weights": sampler_weights(config),
        "stat_names": list(STAT_NAMES),
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


def _is_local(path: str) -> bool:
    return "://" not in str(path)


def check_output_path(path: str) -> None:
    """Refuse an output path that is a file or cannot be written, naming the fix.

    Creates the directory if needed and writes (then removes) a probe file,
    so permissions, read-only mounts and missing parents all show up here,
    before any work is done.
    """
    if not _is_local(path):
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise StoreError(f"--out {path} is a file; give a directory path for the store")
    probe = p / f".s2gen-write-test-{os.getpid()}"
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

    Raises StoreError for a path that holds something that is not an s2gen
    store of a format this version reads.
    """
    if _is_local(path):
        p = Path(path)
        if not p.exists() or (p.is_dir() and not any(p.iterdir())):
            return None
        if not (p / "zarr.json").exists():
            raise StoreError(
                f"{path} exists and is not a Zarr store; choose another path "
                "(s2gen never deletes data it did not write)"
            )
    try:
        group = zarr.open_group(path, mode="r")
    except FileNotFoundError:
        return None
    except Exception as exc:  # zarr raises several types for foreign data
        raise StoreError(f"{path} is not a readable Zarr v3 group: {exc}") from exc
    header = group.attrs.get(ATTRS_KEY)
    if not isinstance(header, dict) or "format_version" not in header:
        raise StoreError(f"{path} is a Zarr group but not an s2gen store (no '{ATTRS_KEY}' attrs)")
    if header["format_version"] != FORMAT_VERSION:
        raise StoreError(
            f"{path} is in s2gen store format {header['format_version']}; this version "
            f"({__version__}) reads format {FORMAT_VERSION}"
        )
    return dict(header)


def create(path: str, config: GenerateConfig, store_config: StoreConfig, n: int) -> None:
    """Create an empty store of ``n`` rows (every array pre-sized, no shard written)."""
    group = zarr.open_group(
        path, mode="w", attributes={ATTRS_KEY: _header(config, store_config, n)}
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
    group.create_group(BOOKKEEPING).create_array(
        "shards",
        shape=(shard_count(n, store_config.shard_rows), len(STAT_NAMES)),
        dtype="int64",
        chunks=(1, len(STAT_NAMES)),
        fill_value=-1,
        compressors=None,
    )


def remove(path: str) -> None:
    """Delete an s2gen store (only call after ``read_header`` recognised it)."""
    if _is_local(path):
        shutil.rmtree(path)
    else:
        zarr.open_group(path, mode="w")  # clears the group on remote stores


def resize(path: str, n: int) -> None:
    """Change the row count of every array and of the header (for extension)."""
    group = zarr.open_group(path, mode="r+")
    for name in _stored_names(group):
        array = group[name]
        array.resize((n,) + array.shape[1:])
    commits = group[COMMITS]
    commits.resize((shard_count(n, group["seed"].shards[0]), commits.shape[1]))
    header = dict(group.attrs[ATTRS_KEY])
    header["rows"] = n
    group.attrs[ATTRS_KEY] = header


def shard_count(n: int, shard_rows: int) -> int:
    """Shards of a store of ``n`` rows."""
    return -(-n // shard_rows)


def shard_rows_range(k: int, n: int, shard_rows: int) -> tuple[int, int]:
    """Rows [start, stop) of shard k."""
    return k * shard_rows, min(n, (k + 1) * shard_rows)


def write_shard(path: str, k: int, batch: Batch, tokens_len: int, stats: dict) -> None:
    """Write shard k from ``batch`` (its rows, in order) and commit it.

    Each array's shard is one object write. A whole shard is encoded in one
    pass by ``s2gen.shard_encoding`` (the bytes zarr would write, without its
    per-chunk async pipeline) and, in a local store, written by
    ``s2gen.file_writer``; the last, short shard of a store goes through
    zarr, which pads it. The shard's row of ``_s2gen/shards`` (its acceptance
    counters) is written last and marks the shard complete.
    """
    wait_for_write_back()  # the previous shard's, so at most one shard is in flight
    group = zarr.open_group(path, mode="r+")
    columns = shard_columns(batch, tokens_len)
    arrays = {name: group[name] for name in columns}  # each opening reads its metadata
    shard_rows = arrays["seed"].shards[0]
    start, stop = shard_rows_range(k, arrays["seed"].shape[0], shard_rows)
    if stop - start != len(batch):
        raise ValueError(f"shard {k} holds {stop - start} rows, the batch has {len(batch)}")
    whole = stop - start == shard_rows
    for name, array in arrays.items():
        encoder = shard_encoder(array.metadata.to_dict()) if whole else None
        if encoder is None:
            array[start:stop] = columns[name]
            continue
        parts = encoder.encode(np.asarray(columns[name], dtype=array.dtype))
        key = _shard_key(array, k)
        if parts is None:  # all fill: no object, as zarr does
            sync(group.store.delete(key))
        elif _is_local(path):
            write_atomically(Path(path, key), parts)
        else:
            sync(
                group.store.set(key, default_buffer_prototype().buffer.from_bytes(b"".join(parts)))
            )
    group[COMMITS][k] = np.array([stats[name] for name in STAT_NAMES], np.int64)


def _shard_key(array, k: int) -> str:
    return f"{array.basename}/" + array.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1))


def shard_records(path: str) -> dict[int, dict[str, int]]:
    """Acceptance counters of the committed shards, by shard index."""
    commits = zarr.open_group(path, mode="r")[COMMITS][:]
    return {
        int(k): dict(zip(STAT_NAMES, (int(v) for v in row), strict=True))
        for k, row in enumerate(commits)
        if row[0] >= 0
    }


def drop_shard(path: str, k: int) -> None:
    """Forget shard k (its commit first, then its objects) so that it is rewritten."""
    group = zarr.open_group(path, mode="r+")
    store = group.store
    group[COMMITS][k] = -1
    for name in _stored_names(group):
        sync(store.delete(_shard_key(group[name], k)))


def missing_shard_objects(path: str, k: int) -> list[str]:
    """Arrays whose shard-k object is absent (empty for a whole shard)."""
    group = zarr.open_group(path, mode="r")
    missing = []
    for name in _stored_names(group):
        if not sync(group.store.exists(_shard_key(group[name], k))):
            missing.append(name)
    return missing


def clean_partial_files(path: str) -> int:
    """Delete stray ``*.partial`` files a killed writer left; return how many."""
    if not _is_local(path) or not Path(path).exists():
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
    if not _is_local(path):
        return None
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


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


class S2Store:
    """Read-only view of an s2gen store (``s2gen.store.open``); no torch needed.

    ``len(store)`` is the number of rows; ``store[i]`` is a ``Pair``;
    ``store.read(start, stop)`` returns raw row-aligned arrays (fast when it
    covers whole chunks); ``store.config`` and ``store.vocabulary`` describe it.
    """

    def __init__(self, path: str, header: dict[str, Any], group) -> None:
        self.path = path
        self.header = header
        self.config = GenerateConfig.from_dict(header["config"])
        self.names = array_names(self.config)
        self.arrays = {name: group[name] for name in self.names}
        self.store_config = StoreConfig.from_dict(header["store"])
        self.vocabulary: list[str] = list(header["vocabulary"])
        self.chunk_rows = self.store_config.chunk_rows
        self.shard_rows = self.store_config.shard_rows

    def __len__(self) -> int:
        return int(self.header["rows"])

    def __repr__(self) -> str:
        return f"S2Store({self.path!r}, rows={len(self)}, length={self.config.length})"

    def read(self, start: int, stop: int, fields=None) -> dict[str, np.ndarray]:
        """Rows [start, stop) of the named arrays (default: all of this store's)."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows [{start}, {stop}) are outside the store's {len(self)} rows")
        return {name: self.arrays[name][start:stop] for name in fields or self.names}

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
        """Indices of the shards that are committed."""
        return sorted(shard_records(self.path))

    @property
    def is_complete(self) -> bool:
        """True when every shard is committed."""
        return len(self.complete_shards()) == shard_count(len(self), self.shard_rows)


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


# --- Series-only stores (OATS diffusion samples) -------------------------------------------

DIFFUSION_SAMPLER = 255  # sampler code of a channel drawn by the OATS diffusion generator


def write_series(
    path: str,
    series: np.ndarray,
    seeds: np.ndarray,
    source: dict[str, Any],
    config: GenerateConfig | None = None,
    store_config: StoreConfig | None = None,
) -> None:
    """Write a format-1 store holding only input series (no expressions).

    Every row has ``n_in = C`` input channels filled from ``series``, ``n_out = 0``
    (``y``, ``expr``, ``tokens`` are left at their fill values 0 / "" / 0 and their
    all-fill shard objects are not written), ``sampler = DIFFUSION_SAMPLER`` on
    its channels, and the given per-row seeds. The attributes gain ``source``
    (what made the series) and the sampler code ``"diffusion"``; every shard is
    committed with zero acceptance counters.

    Parameters
    ----------
    path : the new store (must be empty or absent).
    series : (n, C, L) float32, finite.
    seeds : (n,) uint64 row seeds (e.g. the sampling seeds of each row).
    source : JSON-ready description (generator path, guides, sampling settings).
    config : a generation config to record (e.g. the guides' store); its
        ``length`` and input dims are set to L and C. Default: GenerateConfig().
    store_config : layout; default StoreConfig().
    """
    x = np.asarray(series)
    if x.ndim != 3 or x.dtype != np.float32:
        raise ValueError(f"series has shape {x.shape} and dtype {x.dtype}; give (n, C, L) float32")
    n, c, length = x.shape
    if n == 0 or not np.isfinite(x).all():
        raise ValueError("series must hold at least one row and only finite values")
    if np.shape(seeds) != (n,):
        raise ValueError(f"seeds has shape {np.shape(seeds)}; give one seed per row, ({n},)")
    if read_header(path) is not None:
        raise StoreError(f"{path} already holds a store; choose a new path")
    check_output_path(path)
    base = config or GenerateConfig()
    config = base.replace(
        length=length,
        min_input_dim=c,
        max_input_dim=c,
        min_output_dim=1,
        max_output_dim=1,
        augment=(),
        graph=False,
    )
    layout = store_config or StoreConfig()
    create(path, config, layout, n)
    group = zarr.open_group(path, mode="r+")
    group["x"][:] = x.astype(config.dtype)
    group["n_in"][:] = np.full(n, c, np.uint8)
    group["n_out"][:] = np.zeros(n, np.uint8)
    group["sampler"][:] = np.full((n, c), DIFFUSION_SAMPLER, np.uint8)
    group["seed"][:] = np.asarray(seeds, np.uint64)
    for k in range(shard_count(n, layout.shard_rows)):
        group[COMMITS][k] = np.zeros(len(STAT_NAMES), np.int64)
    header = dict(group.attrs[ATTRS_KEY])
    header["sampler_codes"] = {**header["sampler_codes"], "diffusion": DIFFUSION_SAMPLER}
    header["source"] = dict(source)
    header["rows_written"] = n
    group.attrs[ATTRS_KEY] = header
