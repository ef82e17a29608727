"""Where pretraining windows come from: S2 stores and real unlabeled series, behind one interface.

A source numbers its chunks: ``n_chunks`` per epoch, and ``chunk(index,
epoch, split, rng)`` returns the samples of one split in chunk ``index`` of
``epoch`` (windows drawn with ``rng``). A finite source gives the same rows
every epoch (with new windows). An endless source (``endless``: the generator
of ``s2gen.pretrain.generated``) numbers its chunks from 0 without end, and
the stream reads each once, in order. ``held_out(split, limit)`` gives
deterministic held-out samples. The stream (``s2gen.pretrain.stream``)
shuffles the chunks of all finite sources together, so a run is a pure
function of (config, sources) and resumes exactly.

Samples are numpy arrays: ``series`` (k, window) float32 raw windows,
``tokens`` (k, T) int16 canonical tokens (T >= 1, zeros without a symbol),
``has_symbol`` (k,) bool, ``row`` (k,) int64 (store row, or case number in
the source), ``channel`` (k,) int64, ``expr_id`` (k,) int64 (skeleton id, -1
without a symbol).

- ``StoreSource``: an s2gen store, chunked as stored. Output channels y_j
  with their expression; input channels x_i as series-only samples with
  ``use_inputs``, and always when no objective reads symbols (X and Y are
  then both unlabeled series).
- ``SeriesSource``: real unlabeled series held in memory, read from a folder
  of UCR/UEA sets (its ``NAME_TRAIN`` files only: a test split is never
  opened), a ``.ts``/``.tsv``/``.txt`` file (a ``_TEST`` file is refused), a
  ``.csv`` (every numeric column one series, one row per time step) or a
  ``.npy`` ((L,): one series; (n, L): n series, one per row). Every channel
  of a case is its own univariate series, of any length; gaps are filled by
  linear interpolation. A series of at least ``window`` points gives windows
  as a store row does (``window_spans``: random windows and resampled spans);
  a shorter one is linearly resized to the window, the rule evaluation
  applies. A case's split comes from a hash of (file name, case number),
  like a store row's seed split; its channels share it.
"""

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.data import (
    check_store,
    chunk_samples,
    cut_windows,
    resample_spans,
    size_max_tokens,
    split_of,
    store_fields,
    symbol_lengths,
    window_spans,
)
from s2gen.pretrain.symbols import pretraining_vocabulary
from s2gen.store import S2Store
from s2gen.store import open as open_store

log = logging.getLogger(__name__)

SERIES_PER_CHUNK = 64  # series of a SeriesSource per chunk
CLASSIFICATION_FILES = (".ts", ".tsv", ".txt")
SERIES_FILES = CLASSIFICATION_FILES + (".csv", ".npy")


class Source:
    """Interface of a data source (see the module notes).

    Attributes
    ----------
    name : what the user gave (a path).
    has_symbols : whether samples carry expressions; such a source also has
        ``vocabulary`` (the stored token strings) and ``symbol_lengths()``
        (canonical token lengths of a sample of its expressions).
    n_chunks : chunks per epoch (0 for an endless source).
    endless : whether the chunks are numbered without end (a generator).
    """

    name: str = ""
    has_symbols: bool = False
    n_chunks: int = 0
    endless: bool = False

    def chunk(
        self, index: int, epoch: int, split: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The samples of split ``split`` (a ``SPLITS`` index) in chunk ``index`` of ``epoch``."""
        raise NotImplementedError

    def held_out(self, split: int, limit: int) -> dict[str, np.ndarray] | None:
        """Up to ``limit`` samples of ``split`` with plain centred windows (None if none)."""
        raise NotImplementedError


class StoreSource(Source):
    """The rows of an s2gen store (``cfg.window`` must fit its series)."""

    has_symbols = True

    def __init__(self, path: str, cfg: PretrainConfig) -> None:
        self.name = str(path)
        self.cfg = cfg
        self.inputs = cfg.use_inputs or not cfg.needs_symbols
        self._store: tuple[int, S2Store] | None = None  # (process id, handle)
        store = self.store
        check_store(store, cfg)
        self.n_rows, self.chunk_rows = len(store), store.chunk_rows
        self.vocabulary = list(store.vocabulary)
        self.n_chunks = -(-self.n_rows // self.chunk_rows)

    @property
    def store(self) -> S2Store:
        """The store, opened once per process (a forked DataLoader worker opens its own)."""
        if self._store is None or self._store[0] != os.getpid():
            self._store = (os.getpid(), open_store(self.name))
        return self._store[1]

    def __getstate__(self):  # a spawned worker opens its own handle too
        return {**self.__dict__, "_store": None}

    def symbol_lengths(self) -> np.ndarray:
        """Canonical token lengths of a sample of the store's expressions."""
        return symbol_lengths(self.store)

    def _read(self, index, split, rng, inputs) -> dict[str, np.ndarray]:
        start = index * self.chunk_rows
        stop = min(start + self.chunk_rows, self.n_rows)
        arrays = self.store.read(start, stop, store_fields(inputs))
        n_stored = len(self.vocabulary)
        return chunk_samples(arrays, start, self.cfg, split, rng, n_stored, inputs)

    def chunk(self, index, epoch, split, rng):
        return self._read(index, split, rng, self.inputs)

    def held_out(self, split, limit):
        """Output channels with their symbol, rows in store order: the same set for every run."""
        parts, have = [], 0
        for index in range(self.n_chunks):
            if have >= limit:
                break
            part = self._read(index, split, None, inputs=False)
            parts.append(part)
            have += len(part["row"])
        if have == 0:
            return None
        return {k: np.concatenate([p[k] for p in parts])[:limit] for k in parts[0]}


def case_splits(file: str, n_cases: int, cfg: PretrainConfig) -> np.ndarray:
    """Split code (n_cases,) int8 of the cases of one file: a hash of (file name, case number)."""
    seeds = np.array(
        [
            int.from_bytes(
                hashlib.blake2b(f"{file}:{i}".encode(), digest_size=8).digest(), "little"
            )
            for i in range(n_cases)
        ],
        np.uint64,
    )
    return split_of(seeds, cfg.val_permille, cfg.reference_permille)


def _cases(path: Path) -> list[np.ndarray]:
    """The cases of one file, each (C, L) float64 (NaN = missing)."""
    suffix = path.suffix.lower()
    if suffix in CLASSIFICATION_FILES:
        from s2gen.evaluate.ts_format import read_cases

        return list(read_cases(path).series)
    if suffix == ".csv":
        from s2gen.evaluate.series_format import read_columns

        return [values[None, :] for _, values in read_columns(path)]
    array = np.load(path, allow_pickle=False)
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(f"{path} holds shape {array.shape}; give (L,) or (n, L), one series a row")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path} holds {array.dtype} values; give numbers")
    return [row[None, :] for row in np.atleast_2d(array).astype(np.float64)]


def series_files(path: Path) -> list[Path]:
    """The files of real series under ``path``: itself, or a folder's ``NAME_TRAIN`` sets."""
    if path.is_dir():
        from s2gen.evaluate.archive import find_sets

        return list(find_sets(path).sets.values())
    if path.suffix.lower() not in SERIES_FILES:
        raise ValueError(
            f"--data {path}: give an s2gen store, a folder of UCR/UEA sets, or a "
            f"{', '.join(SERIES_FILES)} file"
        )
    if path.suffix.lower() in CLASSIFICATION_FILES and path.stem.upper().endswith("_TEST"):
        raise ValueError(
            f"--data {path} is a test split, which is never pretrained on; give its _TRAIN file"
        )
    return [path]


class SeriesSource(Source):
    """Real unlabeled univariate series, read once and held in memory.

    Attributes
    ----------
    series : the series ((L,) float64, any L >= 1) in a fixed shuffled order
        (from ``cfg.seed``), so that a chunk mixes files.
    row, channel, split : (n,) case number (counted over the source's files),
        channel, and split code of each series, in the same order.
    """

    def __init__(self, path: str, cfg: PretrainConfig) -> None:
        from s2gen.evaluate.preprocess import fill_gaps

        self.name = str(path)
        self.cfg = cfg
        series, row, channel, split = [], [], [], []
        first_case = 0  # case number of the current file's first case
        for file in series_files(Path(path)):
            cases = _cases(file)
            splits = case_splits(file.name, len(cases), cfg)
            for i, case in enumerate(cases):
                if np.isinf(case).any():
                    raise ValueError(f"--data {file}: case {i} holds infinite values")
                for c, values in enumerate(case):
                    if np.isnan(values).all():
                        log.warning("%s: case %d channel %d has no value; left out", file, i, c)
                        continue
                    series.append(fill_gaps(values))
                    row.append(first_case + i)
                    channel.append(c)
                    split.append(splits[i])
            first_case += len(cases)
        if not series:
            raise ValueError(f"--data {path} holds no series")
        order = np.random.default_rng([cfg.seed, len(series)]).permutation(len(series))
        self.series = [series[k] for k in order]
        self.row = np.asarray(row, np.int64)[order]
        self.channel = np.asarray(channel, np.int64)[order]
        self.split = np.asarray(split, np.int8)[order]
        self.n_chunks = -(-len(series) // SERIES_PER_CHUNK)

    def _samples(self, positions: np.ndarray, rng) -> dict[str, np.ndarray]:
        k = len(positions)
        windows, offset, span = series_windows([self.series[p] for p in positions], self.cfg, rng)
        return {
            "series": windows,
            "offset": offset,
            "span": span,
            "tokens": np.zeros((k, 1), np.int16),
            "has_symbol": np.zeros(k, bool),
            "row": self.row[positions],
            "channel": self.channel[positions],
            "expr_id": np.full(k, -1, np.int64),
        }

    def chunk(self, index, epoch, split, rng):
        positions = np.arange(index * SERIES_PER_CHUNK, (index + 1) * SERIES_PER_CHUNK)
        positions = positions[positions < len(self.series)]
        return self._samples(positions[self.split[positions] == split], rng)

    def held_out(self, split, limit):
        """Series of ``split`` in file order (case, then channel): the same set for every seed."""
        in_order = np.lexsort((self.channel, self.row))
        chosen = in_order[self.split[in_order] == split][:limit]
        return self._samples(chosen, None) if len(chosen) else None


def series_windows(
    series: list[np.ndarray], cfg: PretrainConfig, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows (k, window) float32 of series of any lengths, in their order, and where they
    were cut: first point and span (k,) int64.

    Series of at least ``window`` points: ``window_spans`` and ``cut_windows``
    (random windows and resampled spans; centred plain windows when ``rng`` is
    None). Shorter ones: linearly resized to the window (first and last points
    kept; span = the whole series). Series of one length are drawn together,
    lengths in increasing order.
    """
    out = np.empty((len(series), cfg.window), np.float32)
    lengths = np.array([len(s) for s in series], np.int64)
    offset, span = np.zeros(len(series), np.int64), lengths.copy()
    for length in np.unique(lengths):
        index = np.flatnonzero(lengths == length)
        values = np.stack([series[i] for i in index])  # (m, length)
        if length >= cfg.window:
            offset[index], span[index] = window_spans(len(index), int(length), cfg, rng)
            out[index] = cut_windows(values, offset[index], span[index], cfg.window)
        else:
            whole = np.full(len(index), float(length))
            out[index] = resample_spans(values, np.zeros(len(index)), whole, cfg.window)
    return out, offset, span


def is_store(path: str) -> bool:
    """Whether ``--data`` names an s2gen store (a Zarr group, or a URL)."""
    return "://" in path or (Path(path) / "zarr.json").is_file()


def open_sources(data, cfg: PretrainConfig) -> list[Source]:
    """The sources of ``data``: a path, or a list of paths and ``Source`` objects, in order.

    Raises ValueError for an empty list, a path that does not exist or a file
    of an unknown kind.
    """
    items = [data] if isinstance(data, (str, Path, Source)) else list(data)
    if not items:
        raise ValueError("no --data given; give an s2gen store or real series")
    sources = []
    for item in items:
        if isinstance(item, Source):
            sources.append(item)
        elif is_store(str(item)):
            sources.append(StoreSource(str(item), cfg))
        elif not Path(item).exists():
            raise ValueError(f"--data {item} does not exist; give an s2gen store or real series")
        else:
            sources.append(SeriesSource(str(item), cfg))
    return sources


def resolve_symbols(sources: list[Source], cfg: PretrainConfig):
    """What the run needs of the sources' expressions.

    Returns ``cfg`` (``max_tokens`` sized from the expressions when 0 and an
    objective reads symbols), the pretraining vocabulary (None when no source
    has symbols) and the share of expressions cut by ``max_tokens``.

    Raises ValueError when an objective reads symbols and no source has them,
    or when the sources' vocabularies differ.
    """
    symbolic = [s for s in sources if s.has_symbols]
    if cfg.needs_symbols and not symbolic:
        names = ", ".join(s.name for s in sources)
        raise ValueError(
            f"objective {cfg.objective!r} trains on expressions, but no --data source is an s2gen "
            f"store ({names}); add a store, or choose objectives without symbols "
            "(mae, timedrl, ts2vec)"
        )
    if not symbolic:
        return cfg, None, 0.0
    if any(s.vocabulary != symbolic[0].vocabulary for s in symbolic):
        raise ValueError(
            "the --data stores have different token vocabularies; pretrain on stores written "
            "by one s2gen version"
        )
    truncated = 0.0
    if cfg.needs_symbols:
        lengths = np.concatenate([s.symbol_lengths() for s in symbolic])
        cfg, truncated = size_max_tokens(lengths, cfg)
    return cfg, pretraining_vocabulary(symbolic[0].vocabulary), truncated
