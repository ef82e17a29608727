"""Fresh pairs on the fly: the generator as an endless pretraining source (``--generate``).

Generation makes tens of thousands of pairs per second and pretraining
consumes a few hundred, so a run can train on new pairs, each once, with no
store. ``GeneratorSource`` generates them in the DataLoader worker (one
Numba/BLAS thread there: ``s2gen.threads.pin_threads``); what it generates in
the training process (validation pairs, ``max_tokens`` sizing, batches with no
workers) leaves torch's thread count as it was (``threads.torch_threads_kept``).

Row layout: row i is the pair of seed ``row_seeds(config.seed, i, i + 1)``,
that is row i of a store written with the same generation config, and its
split is that row's (``data.split_of`` on its seed; "val" and "reference"
rows are never trained on). Chunk c holds rows ``[c * chunk_rows, (c + 1) *
chunk_rows)`` and gives the samples of its rows of one split, made by the
store's rules (``data.chunk_samples``: outputs with their canonical tokens,
inputs as series-only samples when they are used, the same windows for the
same ``rng``); only the rows of that split are generated. The held-out sets
are the first rows of their split in row order, the set a store of this
config gives. The stream (``s2gen.pretrain.stream``) reads an endless
source's chunks in order, each exactly once: there are no epochs.
"""

import json

import numpy as np

from s2gen.config import SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.pairs import channel_counts, generate_batch, token_length
from s2gen.kernels.seeds import row_seeds
from s2gen.pretrain.config import GENERATE_LENGTH, GENERATE_PRESETS, PretrainConfig
from s2gen.pretrain.data import SPLITS, chunk_samples, split_of
from s2gen.pretrain.sources import Source
from s2gen.pretrain.symbols import canonical_tokens
from s2gen.symbols.vocabulary import vocabulary
from s2gen.threads import torch_threads_kept

CHUNK_ROWS = 256  # rows per chunk: 10-100 ms of generation on one core
LENGTH_SAMPLE_ROWS = 8192  # rows generated to size max_tokens
SCAN_ROWS = 1 << 16  # row seeds looked at per step when collecting the rows of a split


def preset_config(name: str) -> GenerateConfig:
    """The generation config of ``--generate NAME``: a sampler preset at ``GENERATE_LENGTH`` points.

    Otherwise the ``s2gen generate`` defaults (one input, one output, seed 0),
    so ``--generate reference`` gives the rows of
    ``s2gen generate --sampler-preset reference --length 512``.
    """
    if name not in GENERATE_PRESETS:
        raise ValueError(
            f"--generate {name!r} is no preset ({', '.join(GENERATE_PRESETS)}) and no file"
        )
    weights = dict(SAMPLER_PRESETS[name])
    return GenerateConfig.from_dict({"length": GENERATE_LENGTH, "sampler_weights": weights})


class GeneratorSource(Source):
    """Generated pairs of ``config``, an endless source (see the module notes).

    Parameters
    ----------
    config : the generation config (its ``seed`` numbers the rows).
    cfg : window rules, splits and ``use_inputs`` (as for a store).
    name : what the user gave (a preset name or a file).
    chunk_rows : rows per chunk.
    """

    has_symbols = True
    endless = True

    def __init__(
        self,
        config: GenerateConfig,
        cfg: PretrainConfig,
        name: str = "",
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        if config.length < cfg.window:
            raise ValueError(
                f"window={cfg.window} exceeds the generated series' length {config.length}; "
                f"use a window <= {config.length} or a longer length in the --generate config"
            )
        if cfg.val_permille + cfg.reference_permille >= 1000:
            raise ValueError(
                f"val_permille={cfg.val_permille} + reference_permille={cfg.reference_permille} "
                "leave no rows to train on; keep their sum below 1000"
            )
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows={chunk_rows} is invalid: give at least 1")
        self.config, self.cfg = config, cfg
        self.name = name or "generated"
        self.chunk_rows = chunk_rows
        self.inputs = cfg.use_inputs or not cfg.needs_symbols
        self.vocabulary = vocabulary()
        self.tokens_width = token_length(config)

    def record(self) -> dict:
        """What regenerates the source, as JSON values (saved in ``run.json`` and checkpoints)."""
        record = {"name": self.name, "config": self.config.to_dict(), "chunk_rows": self.chunk_rows}
        return json.loads(json.dumps(record))

    @classmethod
    def from_record(cls, record: dict, cfg: PretrainConfig) -> "GeneratorSource":
        """Inverse of ``record``."""
        config = GenerateConfig.from_dict(record["config"])
        return cls(config, cfg, record["name"], int(record["chunk_rows"]))

    def _splits(self, seeds: np.ndarray) -> np.ndarray:
        return split_of(seeds, self.cfg.val_permille, self.cfg.reference_permille)

    def _chunk_rows(self, index: int, split: int) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers (k,) int64 and seeds (k,) uint64 of chunk ``index``'s rows of ``split``."""
        start = int(index) * self.chunk_rows
        seeds = row_seeds(self.config.seed, start, start + self.chunk_rows)
        keep = self._splits(seeds) == split
        return start + np.flatnonzero(keep), seeds[keep]

    @torch_threads_kept()
    def _samples(self, rows, seeds, split, rng, inputs) -> dict[str, np.ndarray]:
        batch = generate_batch(self.config, seeds)
        arrays = {
            "y": batch.y,
            "n_out": batch.n_out,
            "tokens": batch.tokens(self.tokens_width),
            "seed": batch.seeds,
            "x": batch.x,
            "n_in": batch.n_in,
        }
        out = chunk_samples(arrays, 0, self.cfg, split, rng, len(self.vocabulary), inputs)
        out["row"] = rows[out["row"]]  # position among the generated rows -> row number
        return out

    def chunk(self, index, epoch, split, rng):
        """Samples of the rows of ``split`` in chunk ``index`` (chunks never repeat: no epoch)."""
        rows, seeds = self._chunk_rows(index, split)
        return self._samples(rows, seeds, split, rng, self.inputs)

    @torch_threads_kept()
    def sample_counts(self, indices: np.ndarray) -> np.ndarray:
        """Training samples (n,) int64 of chunks ``indices``, from the rows' seeds alone.

        The sum of n_out (plus n_in when inputs are used) over the chunk's
        "train" rows (``channel_counts``: no pair is generated).
        """
        out = np.zeros(len(indices), np.int64)
        train = SPLITS.index("train")
        for i, index in enumerate(indices):
            _, seeds = self._chunk_rows(int(index), train)
            n_in, n_out = channel_counts(self.config, seeds)
            out[i] = int(n_out.sum()) + (int(n_in.sum()) if self.inputs else 0)
        return out

    @torch_threads_kept()
    def held_out(self, split, limit):
        """The first ``limit`` output samples of ``split`` in row order (centred plain windows)."""
        cfg = self.cfg
        permille = (1000 - cfg.val_permille - cfg.reference_permille, cfg.val_permille)
        permille += (cfg.reference_permille,)  # of the rows, per split
        if limit <= 0 or permille[split] == 0:
            return None
        rows, seeds, have, start = [], [], 0, 0
        while have < limit:
            block = row_seeds(self.config.seed, start, start + SCAN_ROWS)
            chosen = np.flatnonzero(self._splits(block) == split)
            n_out = channel_counts(self.config, block[chosen])[1].astype(np.int64)
            enough = int(np.searchsorted(np.cumsum(n_out), limit - have)) + 1
            rows.append(start + chosen[:enough])
            seeds.append(block[chosen[:enough]])
            have += int(n_out[:enough].sum())
            start += SCAN_ROWS
        part = self._samples(np.concatenate(rows), np.concatenate(seeds), split, None, False)
        return {k: v[:limit] for k, v in part.items()}

    @torch_threads_kept()
    def symbol_lengths(self) -> np.ndarray:
        """Canonical token lengths of the outputs of the first ``LENGTH_SAMPLE_ROWS`` rows."""
        batch = generate_batch(self.config, row_seeds(self.config.seed, 0, LENGTH_SAMPLE_ROWS))
        tokens = batch.tokens(self.tokens_width)
        real = np.arange(tokens.shape[1])[None, :] < batch.n_out[:, None]
        return canonical_tokens(tokens[real], len(self.vocabulary))[1]
