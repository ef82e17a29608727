"""Pairs (X, f, Y = f(X)) from a config and seeds: the library entry points.

``generate_batch(config, seeds)`` is a pure function: the same seeds give the
same bytes for any thread count, batch split or worker layout.
``generate_pair(config, seed)`` is the one-row convenience.
"""

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from s2gen.config import AUGMENTATIONS, GenerateConfig
from s2gen.kernels import opcodes as oc
from s2gen.kernels.augment import probability_vector
from s2gen.kernels.counts import channel_counts_rows
from s2gen.kernels.excitation import SAMPLER_CODES
from s2gen.kernels.expression import max_constants, max_program_length
from s2gen.kernels.kernelsynth import BANK_PARAMS, BANK_TYPES, bank_profiles
from s2gen.kernels.pairs import FAILED, STAT_NAMES, KernelParams, generate_rows
from s2gen.kernels.render import TOKENS_PER_CONSTANT, tokens_batch
from s2gen.kernels.rounding import MODES
from s2gen.kernels.sarima import fitting_periods, max_simulated_steps
from s2gen.symbols import vocabulary as vocab
from s2gen.symbols.operators import BY_NAME
from s2gen.symbols.parse import program_of
from s2gen.symbols.render import infix_batch, infix_width, to_infix

if TYPE_CHECKING:
    from s2gen.generators.graphs import GraphBatch


def _cumulative(names_weights: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    codes = np.array([c for c, _ in names_weights], np.int64)
    cum = np.cumsum(np.array([w for _, w in names_weights], np.float64))
    return codes, cum


def given_programs(config: GenerateConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Programs of ``config.expressions``: code int8[F, P_max], arg int32[F, P_max], len int16[F].

    F = 0 (and P_max = 1) when the expressions are sampled.
    """
    programs = [program_of(text) for text in config.expressions]
    width = max((c.size for c, _ in programs), default=1)
    code = np.zeros((len(programs), width), np.int8)
    arg = np.zeros((len(programs), width), np.int32)
    for j, (c, a) in enumerate(programs):
        code[j, : c.size] = c
        arg[j, : a.size] = a
    return code, arg, np.array([c.size for c, _ in programs], np.int16)


def program_length(config: GenerateConfig) -> int:
    """P: nodes reserved per expression program (an output's composed program in graph mode)."""
    if config.expressions:
        return given_programs(config)[0].shape[1]
    if config.graph:
        return config.graph_max_length
    return max_program_length(config.max_binary_ops, config.max_unary_ops)


def node_program_length(config: GenerateConfig) -> int:
    """Nodes reserved per graph node's own program (over its parents)."""
    return max_program_length(
        config.graph_max_parents + config.binary_ops_offset, config.max_unary_ops
    )


def token_length(config: GenerateConfig) -> int:
    """T: tokens reserved per expression (the last axis of the store's ``tokens``)."""
    if config.graph:  # a program of P nodes has at most (P + 1) / 2 leaves, constants included
        return vocab.max_tokens(config.graph_max_length, (config.graph_max_length + 1) // 2)
    if config.expressions:
        code, _, length = given_programs(config)
        n_const = np.count_nonzero(code == oc.CONST, axis=1)
        return int((length + (TOKENS_PER_CONSTANT - 1) * n_const).max())
    return vocab.max_tokens(
        program_length(config), max_constants(config.max_binary_ops, config.max_unary_ops)
    )


def simulated_steps(config: GenerateConfig) -> int:
    """Scratch entries a channel draw may use: burn-in plus L, for ARMA and SARIMA."""
    steps = config.arma_burn_in + config.length
    if config.family_weights().get("sarima", 0.0) > 0:
        seasonal = config.sarima_max_seasonal_order
        steps = max(steps, max_simulated_steps(config.length, config.arma_burn_in, seasonal))
    return steps


def kernel_params(config: GenerateConfig) -> KernelParams:
    """The Numba-typed parameter tuple of a config."""
    weights = config.weights
    binary = [(BY_NAME[n].code, w) for n, w in weights.items() if BY_NAME[n].arity == 2]
    unary = [(BY_NAME[n].code, w) for n, w in weights.items() if BY_NAME[n].arity == 1]
    bin_codes, bin_cum = _cumulative(binary)
    un_codes, un_cum = _cumulative(unary)
    if un_cum[-1] <= 0:  # max_unary_ops == 0 (checked by the config): never drawn
        un_cum = np.arange(1.0, un_cum.size + 1.0)
    families = [(SAMPLER_CODES[k], w) for k, w in config.family_weights().items()]
    fixed_code, fixed_arg, fixed_len = given_programs(config)
    sampler_codes, sampler_cum = _cumulative(families)
    return KernelParams(
        length=config.length,
        min_in=config.min_input_dim,
        max_in=config.max_input_dim,
        min_out=config.min_output_dim,
        max_out=config.max_output_dim,
        sampler_codes=sampler_codes,
        sampler_cum=sampler_cum,
        mix_kmax=config.mixture_max_components,
        mix_segments=config.mixture_mode == "segments",
        arma_pmax=config.arma_max_p,
        arma_qmax=config.arma_max_q,
        arma_burn=config.arma_burn_in,
        ks_types=BANK_TYPES,
        ks_params=BANK_PARAMS,
        ks_profiles=bank_profiles(config.length),
        ks_max_kernels=config.kernel_synth_max_kernels,
        ts_noise_max=float(config.trend_season_noise_max),
        imf_noise_level=float(config.imf_noise_level),
        sarima_max_order=config.sarima_max_order,
        sarima_max_seasonal=config.sarima_max_seasonal_order,
        sarima_max_integration=config.sarima_max_integration,
        sarima_periods=fitting_periods(config.length),
        sim_len=simulated_steps(config),
        scale_max=float(config.input_scale_max),
        aug_any=bool(config.augment),
        aug_prob=probability_vector(dict(config.augment), AUGMENTATIONS),
        binary_offset=config.binary_ops_offset,
        max_unary=config.max_unary_ops,
        const_prob=float(config.const_leaf_prob),
        bin_codes=bin_codes,
        bin_cum=bin_cum,
        un_codes=un_codes,
        un_cum=un_cum,
        max_abs=float(config.max_abs_output),
        min_rel_std=float(config.min_relative_std),
        max_trig_arg=float(config.max_trig_argument),
        exc_retries=config.excitation_retries,
        max_expr_draws=config.max_expression_draws,
        round_mode=MODES[config.dtype],
        prog_len=program_length(config),
        fixed_code=fixed_code,
        fixed_arg=fixed_arg,
        fixed_len=fixed_len,
        graph_min_nodes=config.min_nodes,
        graph_max_nodes=config.max_nodes,
        graph_max_parents=config.graph_max_parents,
        graph_cap=config.graph_max_length,
        node_prog_len=node_program_length(config),
    )


RENDER_BYTES = 1 << 25  # bound on the text buffer of one rendering call


def infix_in_blocks(code, arg, plen, counts) -> np.ndarray:
    """``infix_batch`` over blocks of rows whose text buffer stays under ``RENDER_BYTES``.

    The buffer reserves ``infix_width(P)`` bytes per program: for long
    programs (graph pairs) a whole shard's would take hundreds of MB.
    """
    n, channels, width = code.shape
    rows = max(1, RENDER_BYTES // max(1, channels * infix_width(width)))
    if rows >= n:
        return infix_batch(code, arg, plen, counts)
    blocks = [
        infix_batch(code[a : a + rows], arg[a : a + rows], plen[a : a + rows], counts[a : a + rows])
        for a in range(0, n, rows)
    ]
    return np.concatenate(blocks)


@dataclass(frozen=True)
class Batch:
    """Generated pairs, row-aligned.

    Attributes
    ----------
    seeds : uint64[n] pair seeds.
    x : [n, C_in, L] inputs in the store dtype; channels >= n_in are 0.
    y : [n, C_out, L] outputs; channels >= n_out are 0.
    n_in, n_out : uint8[n] real channel counts.
    sampler : uint8[n, C_in] excitation family code per channel (0 = padding).
    code, arg : int8 / int32 [n, C_out, P] prefix programs (``s2gen.kernels.opcodes``).
    plen : int16[n, C_out] program lengths (0 for padding outputs).
    stats : int64[n, len(STAT_NAMES)] acceptance counters per row.
    augment : uint8[n, C_in] mask of the augmentations applied to each input
        channel (bit k: ``AUGMENTATIONS[k]``), or None when the config has none.
    graph : the DAG of each pair (``s2gen.generators.graphs.GraphBatch``) in
        graph mode, else None.
    """

    seeds: np.ndarray
    x: np.ndarray
    y: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    sampler: np.ndarray
    code: np.ndarray
    arg: np.ndarray
    plen: np.ndarray
    stats: np.ndarray
    augment: np.ndarray | None = None
    graph: "GraphBatch | None" = None

    def __len__(self) -> int:
        return len(self.seeds)

    def token_counts(self) -> np.ndarray:
        """int64[n, C_out] number of tokens of each expression (0 for padding)."""
        n_const = np.count_nonzero(self.code == oc.CONST, axis=-1)
        return self.plen.astype(np.int64) + (TOKENS_PER_CONSTANT - 1) * n_const

    def tokens(self, length: int) -> np.ndarray:
        """int16[n, C_out, length] prefix tokens, 0-padded.

        Raises ValueError if an expression has more than ``length`` tokens.
        """
        longest = int(self.token_counts().max(initial=0))
        if length < longest:
            raise ValueError(f"length={length} is too short: an expression has {longest} tokens")
        out = np.zeros(self.code.shape[:2] + (length,), np.int16)
        tokens_batch(
            self.code,
            self.arg,
            self.plen,
            self.n_out,
            vocab.OP_TOKEN,
            vocab.VAR_BASE,
            vocab.PLUS,
            vocab.MINUS,
            vocab.DIGIT_BASE,
            vocab.EXP_BASE,
            out,
        )
        return out

    def expressions(self) -> np.ndarray:
        """StringDType[n, C_out] infix strings; "" for padding outputs."""
        return infix_in_blocks(self.code, self.arg, self.plen, self.n_out)

    def expression(self, i: int, j: int = 0) -> str:
        """Infix string of output j of row i."""
        return to_infix(self.code[i, j], self.arg[i, j], self.plen[i, j])

    def stat_totals(self) -> dict[str, int]:
        """Acceptance counters summed over the batch."""
        return dict(zip(STAT_NAMES, (int(v) for v in self.stats.sum(axis=0)), strict=True))


class GenerationError(RuntimeError):
    """Some pair found no accepted expression: the config (or a given expression) always fails."""


# acceptance counter -> (what it means, what to change)
_REJECTIONS = {
    "rejected_nonfinite": ("gave inf or nan", "avoid log/1/u near 0 and exp of large values"),
    "rejected_too_large": (
        "exceeded max_abs_output",
        "raise max_abs_output (at most 6e4) or lower input_scale_max",
    ),
    "rejected_constant": ("were (nearly) constant", "make the output depend on the inputs"),
    "rejected_ill_conditioned": (
        "gave sin/cos/tan an argument beyond max_trig_argument",
        "scale the argument down or lower input_scale_max",
    ),
}


def _failure_message(config: GenerateConfig, stats: np.ndarray, n: int) -> str:
    """Why the failed rows of a batch failed (their rejection counts) and what to change."""
    failed_rows = stats[stats[:, FAILED] > 0]
    totals = dict(zip(STAT_NAMES, failed_rows.sum(axis=0).tolist(), strict=True))
    counts = sorted(((totals[k], k) for k in _REJECTIONS if totals[k]), reverse=True)
    why = ", ".join(f"{c:,} {_REJECTIONS[k][0]}" for c, k in counts) or "no excitation was drawn"
    fix = _REJECTIONS[counts[0][1]][1] if counts else "report this as a bug"
    now = (
        f"max_abs_output={config.max_abs_output}, input_scale_max={config.input_scale_max}, "
        f"min_relative_std={config.min_relative_std}"
    )
    if config.expressions:
        return (
            f"{len(failed_rows)} of {n} pairs found no excitation on which the given expressions "
            f"{list(config.expressions)} pass in excitation_retries x max_expression_draws = "
            f"{config.excitation_retries * config.max_expression_draws} draws: outputs {why}; "
            f"{fix}, or relax the settings ({now})"
        )
    return (
        f"{len(failed_rows)} of {n} pairs found no accepted expression in "
        f"max_expression_draws={config.max_expression_draws} draws: outputs {why}; {fix}, "
        f"or relax the settings ({now})"
    )


def generate_batch(config: GenerateConfig, seeds: np.ndarray) -> Batch:
    """Generate one accepted pair per seed.

    Parameters
    ----------
    config : the generation config.
    seeds : uint64[n] pair seeds (``s2gen.kernels.seeds.row_seeds`` for a store).

    Raises
    ------
    GenerationError (a RuntimeError) if some pair found no accepted expression
    within ``config.max_expression_draws`` draws; the message says why (the
    rejection counts) and what to relax.
    """
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    if seeds.ndim != 1:
        raise ValueError(f"seeds must be a 1-D array of uint64, got shape {seeds.shape}")
    if config.graph:
        from s2gen.generators.graphs import generate_graph_batch

        return _finished(config, generate_graph_batch(config, seeds, kernel_params(config)))
    n = seeds.size
    c_in, c_out, L = config.max_input_dim, config.max_output_dim, config.length
    plen_max = program_length(config)
    x = np.zeros((n, c_in, L), np.float32)
    y = np.zeros((n, c_out, L), np.float32)
    n_in = np.zeros(n, np.uint8)
    n_out = np.zeros(n, np.uint8)
    sampler = np.zeros((n, c_in), np.uint8)
    augmented = np.zeros((n, c_in), np.uint8)
    code = np.zeros((n, c_out, plen_max), np.int8)
    arg = np.zeros((n, c_out, plen_max), np.int32)
    plen = np.zeros((n, c_out), np.int16)
    stats = np.zeros((n, len(STAT_NAMES)), np.int64)
    if n:
        params = kernel_params(config)
        generate_rows(params, seeds, x, y, n_in, n_out, sampler, augmented, code, arg, plen, stats)
    augment = augmented if config.augment else None
    batch = Batch(seeds, x, y, n_in, n_out, sampler, code, arg, plen, stats, augment)
    return _finished(config, batch)


def _finished(config: GenerateConfig, batch: Batch) -> Batch:
    """``batch`` in the store dtype; raises GenerationError naming the fix if a pair failed."""
    failed = int(batch.stats[:, FAILED].sum())
    if failed:
        raise GenerationError(_failure_message(config, batch.stats, len(batch)))
    if config.dtype == "float16":
        return dataclasses.replace(
            batch, x=batch.x.astype(np.float16), y=batch.y.astype(np.float16)
        )
    return batch


def channel_counts(config: GenerateConfig, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n_in`` and ``n_out`` (uint8[n]) of the pairs ``generate_batch`` makes from ``seeds``.

    The counts are the first draws of a pair, so this costs a few RNG draws
    per row instead of a generation (a stream of generated pairs uses it to
    find a batch without generating the ones before it).
    """
    seeds = np.ascontiguousarray(seeds, dtype=np.uint64)
    if seeds.ndim != 1:
        raise ValueError(f"seeds must be a 1-D array of uint64, got shape {seeds.shape}")
    n_in = np.zeros(seeds.size, np.uint8)
    n_out = np.zeros(seeds.size, np.uint8)
    n_given = len(config.expressions)
    channel_counts_rows(
        seeds,
        config.min_input_dim,
        config.max_input_dim,
        config.min_output_dim,
        config.max_output_dim,
        n_given,
        config.graph,
        config.min_nodes,
        config.max_nodes,
        n_in,
        n_out,
    )
    return n_in, n_out


def generate_pair(config: GenerateConfig, seed: int) -> Batch:
    """One pair as a batch of one row (``batch.x[0]``, ``batch.expression(0)``...)."""
    return generate_batch(config, np.array([seed], np.uint64))


__all__ = [
    "Batch",
    "GenerationError",
    "channel_counts",
    "generate_batch",
    "generate_pair",
    "kernel_params",
]
