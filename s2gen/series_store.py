"""Series-only stores: input series without expressions (OATS diffusion samples).

Written through the same shard writer, records and commits as ``s2gen
generate`` stores (docs/FORMAT.md, "Series-only stores").
"""

from typing import Any

import numpy as np

from s2gen.config import GenerateConfig, StoreConfig
from s2gen.file_writer import wait_for_write_back
from s2gen.generators.pairs import token_length
from s2gen.kernels.excitation import SAMPLER_CODES
from s2gen.kernels.pairs import STAT_NAMES
from s2gen.store import (
    DIFFUSION_SAMPLER,
    ShardCommitter,
    StoreError,
    UnfinishedStoreError,
    check_output_path,
    create,
    read_header,
    shard_count,
    shard_rows_range,
    update_header,
    write_shard_objects,
)
from s2gen.store_lock import writer_lock


def write_series(
    path: str,
    series: np.ndarray,
    seeds: np.ndarray,
    source: dict[str, Any],
    config: GenerateConfig | None = None,
    store_config: StoreConfig | None = None,
) -> None:
    """Write a store holding only input series (no expressions).

    Every row has ``n_in = C`` input channels filled from ``series``, ``n_out = 0``
    (``y``, ``expr``, ``tokens`` are left at their fill values 0 / "" / 0 and their
    all-fill shard objects are not written), ``sampler = DIFFUSION_SAMPLER`` on
    its channels, and the given per-row seeds. The attributes gain ``source``
    (what made the series) and the sampler code ``"diffusion"``; every shard is
    written, recorded and committed with zero acceptance counters, as
    ``s2gen generate`` does, under the store's writer lock.

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
    check_output_path(path)
    _refuse_existing(path)  # before the lock file: never write into foreign data
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
    with writer_lock(path):
        _refuse_existing(path)
        create(path, config, layout, n)
        update_header(
            path,
            sampler_codes={"padding": 0, **SAMPLER_CODES, "diffusion": DIFFUSION_SAMPLER},
            source=dict(source),
        )
        committer = ShardCommitter(path)
        zeros = {name: 0 for name in STAT_NAMES}
        for k in range(shard_count(n, layout.shard_rows)):
            start, stop = shard_rows_range(k, n, layout.shard_rows)
            rows = stop - start
            columns = {
                "x": x[start:stop].astype(config.dtype),
                "y": np.zeros((rows, 1, length), config.dtype),
                "n_in": np.full(rows, c, np.uint8),
                "n_out": np.zeros(rows, np.uint8),
                "expr": np.full((rows, 1), "", np.dtypes.StringDType()),
                "tokens": np.zeros((rows, 1, token_length(config)), np.int16),
                "sampler": np.full((rows, c), DIFFUSION_SAMPLER, np.uint8),
                "seed": np.asarray(seeds[start:stop], np.uint64),
            }
            records, _ = write_shard_objects(path, k, columns)
            committer.commit(k, zeros, records)
        wait_for_write_back()
        update_header(path, rows_written=n)


def _refuse_existing(path: str) -> None:
    try:
        existing = read_header(path)
    except UnfinishedStoreError:
        return  # one of ours whose creation was cut short: create it again
    if existing is not None:
        raise StoreError(f"{path} already holds a store; choose a new path")
