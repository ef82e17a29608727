"""Training samples from an S2 store and the windows of any series.

A store sample is one univariate window of an output channel y_j (optionally
also of an input channel x_i, without a symbol) with the canonical tokens of
f_j (``s2gen.pretrain.symbols``). Windows are *raw*: the model normalises each
one with its visible points (``s2gen.pretrain.scaling``). A share ``crop_prob``
of the windows is cut from a random span of ``crop_min`` to ``crop_max``
windows (log-uniform, capped by the series) and linearly resampled to
``window`` points: stretched short spans and downsampled long ones, the views
evaluation produces when it resizes real series (``draw_windows``; real
series use it too, ``s2gen.pretrain.sources``).

Splits are by row and deterministic in the row's stored seed: ``seed % 1000 <
val_permille`` is "val", the next ``reference_permille`` per mille is
"reference" (kept for OATS); training never sees either. ``collate`` makes
the training batch of any source's samples (``s2gen.pretrain.stream``).
"""

import logging

import numpy as np
import torch

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.symbols import canonical_tokens, covering_length, skeleton_ids
from s2gen.store import S2Store

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "reference")
LENGTH_SAMPLE_ROWS = 50_000  # rows read to size max_tokens


def split_of(seed: np.ndarray, val_permille: int = 10, reference_permille: int = 10) -> np.ndarray:
    """Split code per row (0 train, 1 val, 2 reference) from the stored row seeds.

    seed : (n,) uint64. Returns (n,) int8, an index into ``SPLITS``.
    """
    r = np.asarray(seed, np.uint64) % np.uint64(1000)
    out = np.zeros(r.shape, np.int8)
    out[r < val_permille] = 1
    out[(r >= val_permille) & (r < val_permille + reference_permille)] = 2
    return out


def resample_spans(
    values: np.ndarray, start: np.ndarray, span: np.ndarray, window: int
) -> np.ndarray:
    """``window`` evenly spaced points of each row's span, by linear interpolation.

    Parameters
    ----------
    values : (k, L) float series.
    start : (k,) float, first position of each span (>= 0).
    span : (k,) float, span lengths in points (start + span - 1 <= L - 1).
    window : points returned per row.

    Returns
    -------
    (k, window) float32; point i of row r is ``values[r]`` at position
    ``start + i * (span - 1) / (window - 1)`` (first and last points of the span kept,
    the same grid as ``scaling.resize_linear``).
    """
    pos = start[:, None] + np.arange(window)[None, :] * ((span - 1) / (window - 1))[:, None]
    pos = np.clip(pos, 0.0, values.shape[1] - 1)
    left = np.floor(pos).astype(np.int64)
    right = np.minimum(left + 1, values.shape[1] - 1)
    frac = pos - left
    a = np.take_along_axis(values, left, axis=1).astype(np.float64)
    b = np.take_along_axis(values, right, axis=1).astype(np.float64)
    return (a + frac * (b - a)).astype(np.float32)


def window_spans(
    k: int, length: int, cfg: PretrainConfig, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """First point and length (k,) int64 of the span each of k windows is cut from.

    A share ``crop_prob`` of the spans is log-uniform in [crop_min, crop_max]
    windows (capped by ``length``), the others are one window long; rng None:
    the centred plain window (held-out sets).
    """
    window = cfg.window
    if rng is None:
        return np.full(k, (length - window) // 2), np.full(k, window)
    span = np.full(k, float(window))
    crop = rng.random(k) < cfg.crop_prob
    low = np.log(max(2.0, cfg.crop_min * window))
    high = np.log(min(float(length), cfg.crop_max * window))
    span[crop] = np.round(np.exp(rng.uniform(low, max(low, high), size=int(crop.sum()))))
    start = np.floor(rng.random(k) * (length - span + 1))
    return start.astype(np.int64), span.astype(np.int64)


def cut_windows(values: np.ndarray, start: np.ndarray, span: np.ndarray, window: int):
    """Windows (k, window) float32 of series (k, L): plain slices, or resampled spans."""
    k = values.shape[0]
    plain = span == window
    out = np.empty((k, window), np.float32)
    if plain.any():
        idx = start[plain].astype(np.int64)[:, None] + np.arange(window)
        out[plain] = np.take_along_axis(values[plain], idx, axis=1)
    if (~plain).any():
        out[~plain] = resample_spans(
            values[~plain], start[~plain].astype(float), span[~plain].astype(float), window
        )
    return out


def draw_windows(
    values: np.ndarray, cfg: PretrainConfig, rng: np.random.Generator | None
) -> np.ndarray:
    """Training windows (k, window) float32 of series (k, L) (``window_spans``, ``cut_windows``)."""
    start, span = window_spans(values.shape[0], values.shape[1], cfg, rng)
    return cut_windows(values, start, span, cfg.window)


def check_store(store: S2Store, cfg: PretrainConfig) -> None:
    """A store's series must hold a window."""
    if store.config.length < cfg.window:
        raise ValueError(
            f"window={cfg.window} exceeds the store's series length {store.config.length}; "
            f"use a window <= {store.config.length} (a multiple of {cfg.token_points} points)"
        )


def symbol_lengths(store: S2Store, limit: int = LENGTH_SAMPLE_ROWS) -> np.ndarray:
    """Canonical token lengths (k,) of the outputs of up to ``limit`` rows, chunks spread evenly."""
    n_chunks = -(-len(store) // store.chunk_rows)
    take = max(1, min(n_chunks, -(-limit // store.chunk_rows)))
    n_stored = len(store.vocabulary)
    out = []
    for c in np.unique(np.linspace(0, n_chunks - 1, take).round().astype(np.int64)):
        start = int(c) * store.chunk_rows
        part = store.read(start, min(start + store.chunk_rows, len(store)), ("tokens", "n_out"))
        real = np.arange(part["tokens"].shape[1])[None, :] < part["n_out"][:, None]
        out.append(canonical_tokens(part["tokens"][real], n_stored)[1])
    return np.concatenate(out)


def resolve_max_tokens(store: S2Store, cfg: PretrainConfig) -> tuple[PretrainConfig, float]:
    """``cfg`` with ``max_tokens`` sized from the store when it is 0, and the share truncated."""
    return size_max_tokens(symbol_lengths(store), cfg)


def size_max_tokens(lengths: np.ndarray, cfg: PretrainConfig) -> tuple[PretrainConfig, float]:
    """``cfg`` with ``max_tokens`` sized from expression lengths (k,) when it is 0.

    The size covers at least 99% of the expressions (a sample of them); the
    share of expressions longer than the final ``max_tokens`` is returned so
    the run can log it.
    """
    if cfg.max_tokens == 0:
        cfg = cfg.replace(max_tokens=covering_length(lengths))
    truncated = float((lengths > cfg.max_tokens).mean()) if lengths.size else 0.0
    return cfg, truncated


def chunk_samples(
    chunk: dict[str, np.ndarray],
    start: int,
    cfg: PretrainConfig,
    split: int,
    rng: np.random.Generator | None,
    n_stored: int,
    inputs: bool = False,
) -> dict[str, np.ndarray]:
    """All samples of the rows of one split in a block of store rows.

    Parameters
    ----------
    chunk : arrays ``store_fields(inputs)`` of rows ``start ..``.
    split : index into ``SPLITS``.
    rng : draws the windows (``draw_windows``); None takes centred plain windows.
    n_stored : size of the store's vocabulary (canonical decade ids start there).
    inputs : also the input channels x_i, as samples without a symbol.

    Returns
    -------
    ``series`` (k, window) float32 raw, ``tokens`` (k, T) int16 canonical,
    ``has_symbol`` (k,) bool, ``row`` (k,) int64, ``channel`` (k,) int64,
    ``expr_id`` (k,) int64 skeleton id (-1 without a symbol), ``offset`` and
    ``span`` (k,) int64: where the window was cut (OATS caches scores per window).
    """
    keep = split_of(chunk["seed"], cfg.val_permille, cfg.reference_permille) == split
    tokens = chunk["tokens"]
    parts = [_channel_samples(chunk["y"], chunk["n_out"], keep, tokens, n_stored)]
    if inputs:
        no_symbol = np.zeros(chunk["x"].shape[:2] + tokens.shape[2:], tokens.dtype)
        parts.append(_channel_samples(chunk["x"], chunk["n_in"], keep, no_symbol, n_stored, False))
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    values = out.pop("values")
    out["offset"], out["span"] = window_spans(values.shape[0], values.shape[1], cfg, rng)
    out["series"] = cut_windows(values, out["offset"], out["span"], cfg.window)
    out["row"] += start
    return out


def _channel_samples(
    values, n_real, keep, tokens, n_stored, has_symbol=True
) -> dict[str, np.ndarray]:
    """Real channels of the kept rows: values (n, C, L), tokens (n, C, T) -> per sample."""
    channels = values.shape[1]
    real = (np.arange(channels)[None, :] < n_real[:, None]) & keep[:, None]  # (n, C)
    row, channel = np.nonzero(real)
    tok, _ = canonical_tokens(tokens[row, channel], n_stored)  # (k, T)
    ids = skeleton_ids(tok, n_stored) if has_symbol else np.full(len(row), -1, np.int64)
    return {
        "values": values[row, channel],  # (k, L)
        "tokens": tok,
        "has_symbol": np.full(len(row), has_symbol),
        "row": row.astype(np.int64),
        "channel": channel.astype(np.int64),
        "expr_id": ids,
    }


def collate(samples: dict[str, np.ndarray], max_tokens: int) -> dict[str, torch.Tensor]:
    """Numpy samples (with ``source``, the index of their data source) -> the batch of tensors.

    Tokens are cut to ``max_tokens`` (0 keeps them all) and then to the
    longest real expression of the batch (at least one column).
    """
    tok = samples["tokens"][:, :max_tokens] if max_tokens else samples["tokens"]
    longest = int((tok != 0).sum(axis=1).max(initial=0)) if tok.size else 0
    tok = tok[:, : max(longest, 1)]
    return {
        "series": torch.from_numpy(np.ascontiguousarray(samples["series"])),
        "tokens": torch.from_numpy(tok.astype(np.int64)),
        "has_symbol": torch.from_numpy(samples["has_symbol"]),
        "row": torch.from_numpy(samples["row"]),
        "channel": torch.from_numpy(samples["channel"]),
        "expr_id": torch.from_numpy(samples["expr_id"]),
        "offset": torch.from_numpy(samples["offset"]),
        "span": torch.from_numpy(samples["span"]),
        "source": torch.from_numpy(samples["source"]),
    }


def store_fields(inputs: bool) -> tuple[str, ...]:
    """The store arrays ``chunk_samples`` reads (with the input channels when ``inputs``)."""
    base = ("y", "n_out", "tokens", "seed")
    return base + ("x", "n_in") if inputs else base
