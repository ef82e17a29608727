"""Series for the OATS stage from s2gen stores and from .npy / .csv files.

A store row holds up to C_in input and C_out output channels; here every real
channel of the chosen field(s) is one univariate series of length L.
"""

from pathlib import Path

import numpy as np

FIELDS = ("x", "y", "both")


def _fields(field: str) -> tuple[str, ...]:
    if field not in FIELDS:
        raise ValueError(f"field={field!r} is invalid: choose one of {', '.join(FIELDS)}")
    return ("x", "y") if field == "both" else (field,)


def parse_rows(text: str | None, n: int) -> tuple[int, int]:
    """Rows [start, stop) from 'A:B' (either side may be empty) within a source of ``n`` rows."""
    if not text:
        return 0, n
    head, sep, tail = text.partition(":")
    try:
        start = int(head) if head.strip() else 0
        stop = int(tail) if tail.strip() else n
    except ValueError:
        sep = ""
    if not sep or not 0 <= start < stop <= n:
        raise ValueError(f"rows {text!r} are invalid: write START:STOP within 0:{n}, e.g. 0:64")
    return start, stop


def store_channels(block: dict[str, np.ndarray], field: str) -> np.ndarray:
    """Real channels of the rows in ``block`` (x/y with n_in/n_out) as series (m, L) float32."""
    parts = []
    for name in _fields(field):
        values, count = block[name], block[f"n_{'in' if name == 'x' else 'out'}"]
        real = np.arange(values.shape[1])[None, :] < count[:, None]  # (n, C)
        parts.append(values[real])  # (m, L), row-major: row 0's channels first
    return np.concatenate(parts).astype(np.float32)


def store_subset(
    store,
    fraction: float,
    seed: int,
    field: str = "y",
    val_permille: int = 10,
    reference_permille: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Series of a random ``fraction`` of the rows of an ``S2Store``.

    Whole chunks are read (a random set of chunks large enough), then rows are
    drawn from them, so a 5 % subset of a big store reads about 5 % of it.
    Only training rows are drawn: the validation and reference splits of
    pretraining (``s2gen.pretrain.data.split_of`` with ``val_permille`` and
    ``reference_permille``, give the pretraining run's) are held out from the
    generator too, so generated rows never imitate them.

    Returns
    -------
    series (m, L) float32 and the store rows they came from, sorted (k,) int64.
    """
    n = len(store)
    want = max(2, int(round(fraction * n)))
    rng = np.random.default_rng(seed)
    chunk = store.chunk_rows
    chunks = rng.permutation(-(-n // chunk))
    pools, chosen = [], []
    for k in chunks:  # until the chosen chunks hold ``want`` training rows
        chosen.append(int(k))
        rows = np.arange(k * chunk, min(n, (k + 1) * chunk))
        pools.append(rows[_training_rows(store, [int(k)], val_permille, reference_permille)])
        if sum(len(p) for p in pools) >= want:
            break
    pool = np.sort(np.concatenate(pools))
    rows = np.sort(rng.choice(pool, size=min(want, len(pool)), replace=False))
    series = [
        store_channels(_read_rows(store, rows[rows // chunk == k]), field) for k in sorted(chosen)
    ]
    return np.concatenate(series), rows


def _training_rows(store, chunks: list[int], val_permille: int, reference_permille: int):
    """(k,) bool over the rows of ``chunks`` (in order): which are in the "train" split."""
    from s2gen.pretrain.data import SPLITS, split_of

    seeds = np.concatenate(
        [
            store.read(
                k * store.chunk_rows, min(len(store), (k + 1) * store.chunk_rows), ("seed",)
            )["seed"]
            for k in chunks
        ]
    )
    split = split_of(seeds, val_permille, reference_permille)
    return split == SPLITS.index("train")


def _read_rows(store, rows: np.ndarray) -> dict[str, np.ndarray]:
    if len(rows) == 0:
        return {k: v[:0] for k, v in store.read(0, 0, ("x", "y", "n_in", "n_out")).items()}
    start, stop = int(rows.min()), int(rows.max()) + 1
    block = store.read(start, stop, ("x", "y", "n_in", "n_out"))
    return {k: v[rows - start] for k, v in block.items()}


def load_series(source: str | Path, rows: str | None = None, field: str = "y") -> np.ndarray:
    """Series (m, L) float32 from a store directory, a .npy file or a .csv file.

    A store gives the real channels of ``field`` of rows ``rows`` ('A:B'); a
    .npy file holds (n, L) or (n, 1, L); a .csv file holds one series per line,
    comma-separated, no header. ``rows`` selects rows of a file too.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".csv"):
        if not path.is_file():
            raise ValueError(f"{source} does not exist; give an existing .npy or .csv file")
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = np.loadtxt(path, delimiter=",", ndmin=2)
        if data.ndim == 3 and data.shape[1] == 1:
            data = data[:, 0]  # (n, 1, L) -> (n, L)
        if data.ndim != 2:
            raise ValueError(f"{source} holds shape {data.shape}; give (n, L) or (n, 1, L)")
        start, stop = parse_rows(rows, len(data))
        return np.asarray(data[start:stop], dtype=np.float32)
    from s2gen.store import open as open_store

    store = open_store(str(source))
    start, stop = parse_rows(rows, len(store))
    return store_channels(store.read(start, stop, ("x", "y", "n_in", "n_out")), field)


def crop_windows(series: np.ndarray, window: int, seed: int) -> np.ndarray:
    """One random window (m, window) of each row of ``series`` (m, L), offsets from ``seed``."""
    m, length = series.shape
    if not 1 <= window <= length:
        raise ValueError(f"window={window} is invalid: it must be in 1..{length} (the length)")
    offset = np.random.default_rng(seed).integers(0, length - window + 1, size=m)
    idx = offset[:, None] + np.arange(window)  # (m, window)
    return np.take_along_axis(series, idx, axis=1)


def guide_windows(series: np.ndarray, length: int, offset: int | None, seed: int) -> np.ndarray:
    """Windows (m, length) of guides ``series`` (m, L) for a generator of ``length`` points.

    ``offset`` K takes points K .. K + length - 1 of every guide; None draws
    one offset per guide from ``seed`` (as pretraining draws its windows).
    Guides shorter than ``length`` are refused.
    """
    m, full = series.shape
    if full < length:
        raise ValueError(
            f"the guides have {full} points, fewer than the generator's {length}: give longer "
            f"guides or a generator trained on {full}-point windows (train-generator --window)"
        )
    if offset is None:
        return crop_windows(series, length, seed)
    if not 0 <= offset <= full - length:
        raise ValueError(
            f"offset={offset} is invalid: guides of {full} points hold windows of {length} at "
            f"offsets 0..{full - length}"
        )
    return series[:, offset : offset + length]
