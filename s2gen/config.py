"""Frozen configuration dataclasses, one per stage.

A config is saved with what it produced (store attributes, checkpoints), so it
must round-trip through JSON: ``GenerateConfig.from_dict(cfg.to_dict()) == cfg``.
``__post_init__`` checks every field and names the bad one and the fix.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from s2gen.checks import check_float, check_int, check_known, fail
from s2gen.symbols.operators import BY_NAME, DEFAULT_WEIGHTS

MAX_INPUT_DIM = 16  # variables x_0..x_15 are in the token vocabulary
MAX_OUTPUT_DIM = 64
MAX_NODES = 32  # graph nodes per pair (parents are stored as a uint32 bit mask)
DTYPES = ("float32", "float16")
MIXTURE_MODES = ("mixture", "segments")
SAMPLERS = ("mixture", "arma", "kernel_synth", "trend_season", "imf", "sarima")
# series augmentations in the order they are applied; bit k of the store's
# ``augment`` mask is AUGMENTATIONS[k] (s2gen.kernels.augment)
AUGMENTATIONS = ("time_warp", "window_slice", "frequency", "magnitude_warp", "scaling", "jitter")
SAMPLER_PRESETS = {
    # the default: SARIMA pairs transferred best of the mixes measured (BENCHMARKS.md, issue 14)
    "sarima": (("sarima", 1.0),),
    "paper": (),  # SymTime section 3.1: mixture with probability mixture_prob, else ARMA
    "reference": (  # the reference generator's default mix (s2generator.md section 3)
        ("mixture", 0.1),
        ("arma", 0.2),
        ("trend_season", 0.35),
        ("kernel_synth", 0.25),
        ("imf", 0.1),
    ),
    "all": tuple((name, 1.0) for name in SAMPLERS),
}
DEFAULT_SAMPLER_PRESET = "sarima"
PAPER_MIXTURE_PROB = 0.3


def _expression_inputs(expressions: tuple[str, ...]) -> int:
    """Input channels the given expressions need; a bad one raises ExpressionError naming it."""
    from s2gen.symbols.parse import ExpressionError, program_of, variables_of

    needed = 1
    for i, text in enumerate(expressions):
        try:
            needed = max(needed, variables_of(*program_of(text)))
        except ExpressionError as exc:
            raise exc.for_field(f"expressions[{i}]") from None
    return needed


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that decides the content of a generated pair.

    A pair is a pure function of ``(config, pair seed)``; the pair seeds of a
    store are derived from ``seed`` and the row index (``s2gen.kernels.seeds``).

    Attributes
    ----------
    length : points per series, L.
    min_input_dim, max_input_dim : input channels M ~ U{min..max} per pair.
    min_output_dim, max_output_dim : outputs N ~ U{min..max} per pair; all N share X.
    seed : base seed of the row seeds.
    dtype : store dtype, "float32" or "float16". X is rounded to it *before* f
        is evaluated, so the stored y is f of the stored x.
    mixture_prob : probability P that an input channel is a mixture-distribution
        series (else ARMA) in the paper's mix. SymTime (section 3.1) requires
        P <= 0.5. Used only when ``sampler_weights`` is empty.
    sampler_weights : weight per sampler family (``SAMPLERS``; missing ones
        are 0), e.g. ``SAMPLER_PRESETS["reference"]``. Empty means the paper's
        mixture/ARMA mix set by ``mixture_prob`` (for graph pairs: KernelSynth
        alone), as stores of s2gen 0.1 (whose default it was) record it.
        Not given (None): ``SAMPLER_PRESETS[DEFAULT_SAMPLER_PRESET]`` (SARIMA
        alone; a ``mixture_prob`` other than 0.3 is then an error, since it
        would have no effect), or empty for graph pairs (KernelSynth roots).
    mixture_max_components : k ~ U{1..k_max} mixture components.
    mixture_mode : "mixture" (each time step draws its component) or
        "segments" (contiguous blocks per component, the reference's layout).
    arma_max_p, arma_max_q : ARMA orders p ~ U{1..p_max}, q ~ U{1..q_max}.
    arma_burn_in : steps simulated and discarded before the stored window.
    kernel_synth_max_kernels : KernelSynth combines U{1..this} bank kernels.
    trend_season_noise_max : trend x seasonality noise scale ~ U(0, this).
    imf_noise_level : intrinsic-mode noise standard deviation, relative to RMS.
    sarima_max_order : SARIMA p, q ~ U{0..this}.
    sarima_max_seasonal_order : SARIMA P, Q ~ U{0..this}.
    sarima_max_integration : SARIMA d + D <= this (d, D in 0..2 each;
        ``s2gen.kernels.sarima`` says why 2 is the default).
    input_scale_max : X is multiplied by s ~ U(0, input_scale_max) after the
        per-channel z-score; 0 turns the scaling off (s = 1).
    binary_ops_offset : binary operators ~ U{0..M + offset} per output (3 gives
        the reference's U{0..M+3}).
    max_unary_ops : unary operators ~ U{0..max} per output.
    const_leaf_prob : probability that a leaf beyond the first M is a constant.
    operator_weights : sampling weight per operator name (registry defaults).
    max_abs_output : a pair is rejected if any |y| exceeds this.
    min_relative_std : a pair is rejected if an output's standard deviation is
        below this times its max |y| (a (nearly) constant channel).
    max_trig_argument : a pair is rejected if sin, cos or tan receive an
        argument beyond this: there float64 rounding decides the value.
    augment : probability of each augmentation (``AUGMENTATIONS``; missing
        ones are 0) per input channel, applied to the z-scored channel before
        the scale factor, so f is evaluated on the augmented x; empty: none.
    excitation_retries : excitation draws tried per expression draw before the
        failing expression is redrawn.
    max_expression_draws : expression draws per pair before generation gives
        up with an error (only reachable with a pathological config).
    graph : graph pairs (``s2gen.kernels.graph``): a random DAG whose first
        n_in nodes are the inputs (KernelSynth draws unless ``sampler_weights``
        says otherwise) and whose other nodes are random expressions of their
        parents; the outputs are n_out of those nodes, stored as expressions
        composed over the inputs.
    min_nodes, max_nodes : graph nodes N ~ U{min..max}; min_nodes must leave
        room for the inputs and outputs (>= max_input_dim + max_output_dim).
    graph_max_parents : a node has U{1..this} candidate parents.
    graph_max_length : largest composed program (nodes) of a graph node; a
        node whose composition is longer draws its program again.
    expressions : given expressions f_j (text over x_0..x_15 in the language of
        ``s2gen.symbols.grammar``) instead of sampled ones: every pair has
        exactly these outputs (min/max_output_dim = their number) and only
        the excitation is drawn, up to excitation_retries x
        max_expression_draws times per pair.
    """

    length: int = 256
    min_input_dim: int = 1
    max_input_dim: int = 1
    min_output_dim: int = 1
    max_output_dim: int = 1
    seed: int = 0
    dtype: str = "float32"
    mixture_prob: float = PAPER_MIXTURE_PROB
    sampler_weights: tuple[tuple[str, float], ...] | None = None
    mixture_max_components: int = 5
    mixture_mode: str = "mixture"
    arma_max_p: int = 3
    arma_max_q: int = 3
    arma_burn_in: int = 256
    kernel_synth_max_kernels: int = 5
    trend_season_noise_max: float = 0.1
    imf_noise_level: float = 0.05
    sarima_max_order: int = 3
    sarima_max_seasonal_order: int = 2
    sarima_max_integration: int = 2
    input_scale_max: float = 16.0
    binary_ops_offset: int = 3
    max_unary_ops: int = 5
    const_leaf_prob: float = 0.25
    operator_weights: tuple[tuple[str, float], ...] = field(
        default_factory=lambda: tuple(DEFAULT_WEIGHTS.items())
    )
    max_abs_output: float = 1e4
    min_relative_std: float = 1e-3
    max_trig_argument: float = 1e4
    augment: tuple[tuple[str, float], ...] = ()
    excitation_retries: int = 3
    max_expression_draws: int = 1000
    graph: bool = False
    min_nodes: int = 4
    max_nodes: int = 8
    graph_max_parents: int = 3
    graph_max_length: int = 128
    expressions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_int("length", self.length, 2, 1 << 20)
        check_int("min_input_dim", self.min_input_dim, 1, MAX_INPUT_DIM)
        check_int("max_input_dim", self.max_input_dim, 1, MAX_INPUT_DIM)
        if self.min_input_dim > self.max_input_dim:
            fail(
                "min_input_dim",
                self.min_input_dim,
                f"it must not exceed max_input_dim={self.max_input_dim}",
            )
        check_int("min_output_dim", self.min_output_dim, 1, MAX_OUTPUT_DIM)
        check_int("max_output_dim", self.max_output_dim, 1, MAX_OUTPUT_DIM)
        if self.min_output_dim > self.max_output_dim:
            fail(
                "min_output_dim",
                self.min_output_dim,
                f"it must not exceed max_output_dim={self.max_output_dim}",
            )
        check_int("seed", self.seed, 0, (1 << 64) - 1)
        if self.dtype not in DTYPES:
            fail("dtype", self.dtype, f"choose one of {', '.join(DTYPES)}")
        check_float("mixture_prob", self.mixture_prob, 0.0, 1.0)
        self._resolve_sampler_weights()
        check_int("mixture_max_components", self.mixture_max_components, 1, 64)
        if self.mixture_mode not in MIXTURE_MODES:
            fail("mixture_mode", self.mixture_mode, f"choose one of {', '.join(MIXTURE_MODES)}")
        check_int("arma_max_p", self.arma_max_p, 1, 10)
        check_int("arma_max_q", self.arma_max_q, 1, 10)
        check_int("arma_burn_in", self.arma_burn_in, 0, 1 << 20)
        self._check_sampler_weights()
        check_int("kernel_synth_max_kernels", self.kernel_synth_max_kernels, 1, 16)
        check_float("trend_season_noise_max", self.trend_season_noise_max, 0.0, 1.0)
        check_float("imf_noise_level", self.imf_noise_level, 0.0, 10.0)
        check_int("sarima_max_order", self.sarima_max_order, 0, 10)
        check_int("sarima_max_seasonal_order", self.sarima_max_seasonal_order, 0, 4)
        check_int("sarima_max_integration", self.sarima_max_integration, 0, 4)
        check_float("input_scale_max", self.input_scale_max, 0.0, 1e6)
        check_int("binary_ops_offset", self.binary_ops_offset, 0, 16)
        check_int("max_unary_ops", self.max_unary_ops, 0, 16)
        check_float("const_leaf_prob", self.const_leaf_prob, 0.0, 1.0)
        self._check_operator_weights()
        check_float("max_abs_output", self.max_abs_output, 1e-6, 6e4)
        check_float("min_relative_std", self.min_relative_std, 0.0, 1.0)
        check_float("max_trig_argument", self.max_trig_argument, 1.0, 1e15)
        self._check_augment()
        check_int("excitation_retries", self.excitation_retries, 1, 1000)
        check_int("max_expression_draws", self.max_expression_draws, 1, 10**6)
        self._check_graph()
        if self.expressions:
            self._check_expressions()

    def _check_graph(self) -> None:
        if not isinstance(self.graph, bool):
            fail("graph", self.graph, "it must be true or false")
        check_int("min_nodes", self.min_nodes, 2, MAX_NODES)
        check_int("max_nodes", self.max_nodes, 2, MAX_NODES)
        if self.min_nodes > self.max_nodes:
            fail("min_nodes", self.min_nodes, f"it must not exceed max_nodes={self.max_nodes}")
        check_int("graph_max_parents", self.graph_max_parents, 1, MAX_INPUT_DIM)
        check_int("graph_max_length", self.graph_max_length, 16, 4096)
        if not self.graph:
            return
        needed = self.max_input_dim + self.max_output_dim
        if self.min_nodes < needed:
            fail(
                "min_nodes",
                self.min_nodes,
                f"a graph needs room for max_input_dim={self.max_input_dim} inputs and "
                f"max_output_dim={self.max_output_dim} outputs: set min_nodes >= {needed}",
            )
        if self.expressions:
            fail("graph", self.graph, "graph pairs sample their expressions: drop expressions")

    def _check_expressions(self) -> None:
        needed = _expression_inputs(self.expressions)
        n = len(self.expressions)
        if not self.min_output_dim == self.max_output_dim == n:
            fail(
                "max_output_dim",
                (self.min_output_dim, self.max_output_dim),
                f"with {n} given expression(s) set min_output_dim = max_output_dim = {n}",
            )
        if self.min_input_dim < needed:
            fail(
                "min_input_dim",
                self.min_input_dim,
                f"the expressions use x_0..x_{needed - 1}: set min_input_dim >= {needed}",
            )

    def _resolve_sampler_weights(self) -> None:
        """Fill in the default mix where ``sampler_weights`` was not given."""
        if self.sampler_weights is not None:
            return
        if self.mixture_prob != PAPER_MIXTURE_PROB and not self.graph:
            fail(
                "mixture_prob",
                self.mixture_prob,
                "it sets the paper's mixture/ARMA mix, which is no longer the default (SARIMA): "
                "add --sampler-preset paper (sampler_weights = {}), or give the families' "
                "weights, e.g. --samplers mixture=0.5,arma=0.5",
            )
        default = () if self.graph else SAMPLER_PRESETS[DEFAULT_SAMPLER_PRESET]
        object.__setattr__(self, "sampler_weights", default)

    def family_weights(self) -> dict[str, float]:
        """Weight of each excitation family: ``sampler_weights`` if not empty, else
        KernelSynth alone for graph pairs, else the paper's mix (mixture with
        probability ``mixture_prob``, else ARMA)."""
        if self.sampler_weights:
            return {name: dict(self.sampler_weights).get(name, 0.0) for name in SAMPLERS}
        if self.graph:
            return {"kernel_synth": 1.0}
        return {"mixture": self.mixture_prob, "arma": 1.0 - self.mixture_prob}

    def _check_sampler_weights(self) -> None:
        weights = dict(self.sampler_weights)
        unknown = sorted(set(weights) - set(SAMPLERS))
        if unknown:
            fail("sampler_weights", unknown, f"unknown sampler(s); known are {', '.join(SAMPLERS)}")
        for name, w in weights.items():
            check_float(f"sampler_weights[{name}]", w, 0.0, 1e6)
        if weights and sum(weights.values()) <= 0:
            fail("sampler_weights", weights, "give at least one sampler a weight > 0")

    def _check_augment(self) -> None:
        given = dict(self.augment)
        unknown = sorted(set(given) - set(AUGMENTATIONS))
        if unknown:
            fail(
                "augment", unknown, f"unknown augmentation(s); known are {', '.join(AUGMENTATIONS)}"
            )
        for name, chance in given.items():
            check_float(f"augment[{name}]", chance, 0.0, 1.0)

    def _check_operator_weights(self) -> None:
        weights = dict(self.operator_weights)
        unknown = sorted(set(weights) - set(BY_NAME))
        if unknown:
            fail(
                "operator_weights",
                unknown,
                f"unknown operator(s); known are {', '.join(BY_NAME)}",
            )
        missing = sorted(set(BY_NAME) - set(weights))
        if missing:
            fail("operator_weights", missing, "every operator needs a weight (0 disables it)")
        for name, w in weights.items():
            check_float(f"operator_weights[{name}]", w, 0.0, 1e6)
        binary_total = sum(w for n, w in weights.items() if BY_NAME[n].arity == 2)
        if binary_total <= 0:
            fail("operator_weights", weights, "at least one binary operator needs weight > 0")
        unary_total = sum(w for n, w in weights.items() if BY_NAME[n].arity == 1)
        if unary_total <= 0 and self.max_unary_ops > 0:
            fail(
                "operator_weights",
                weights,
                "give a unary operator weight > 0, or set max_unary_ops=0",
            )

    @property
    def weights(self) -> dict[str, float]:
        """Operator weights as a dict."""
        return dict(self.operator_weights)

    @property
    def max_binary_ops(self) -> int:
        """Largest number of binary operators an output can have."""
        return self.max_input_dim + self.binary_ops_offset

    @classmethod
    def for_expressions(cls, expressions, **settings: Any) -> "GenerateConfig":
        """Config for pairs of the given expressions (text over x_0..x_15, see ``grammar``).

        The output dims default to the number of expressions and the input
        dims to the variables they use; other ``settings`` are fields.
        """
        expressions = tuple(str(e) for e in expressions)
        n = len(expressions)
        if not n:
            fail("expressions", expressions, "give at least one expression")
        settings.setdefault("min_output_dim", n)
        settings.setdefault("max_output_dim", n)
        needed = _expression_inputs(expressions)
        settings.setdefault("max_input_dim", max(needed, settings.get("min_input_dim", 1)))
        settings.setdefault("min_input_dim", settings["max_input_dim"])
        return cls.from_dict({**settings, "expressions": expressions})

    def replace(self, **changes: Any) -> "GenerateConfig":
        """A copy with ``changes`` applied (and validated). The copy keeps this
        config's resolved ``sampler_weights`` unless ``changes`` sets them, also
        when ``graph`` changes (whose default mix differs)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``operator_weights`` becomes a name -> weight mapping."""
        out = dataclasses.asdict(self)
        out["operator_weights"] = dict(self.operator_weights)
        out["sampler_weights"] = dict(self.sampler_weights)
        out["augment"] = dict(self.augment)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerateConfig":
        """Inverse of ``to_dict``; unknown keys are an error naming them.

        ``operator_weights`` may be partial: operators it omits keep their
        registry default.
        """
        check_known(cls, data, "generation")
        data = dict(data)
        if "operator_weights" in data:
            given = data["operator_weights"]
            given = dict(given.items() if isinstance(given, dict) else given)
            unknown_ops = sorted(set(given) - set(BY_NAME))
            if unknown_ops:
                fail(
                    "operator_weights",
                    unknown_ops,
                    f"unknown operator(s); known are {', '.join(BY_NAME)}",
                )
            merged = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in given.items()}}
            data["operator_weights"] = tuple(merged.items())
        if data.get("sampler_weights") is not None:  # None: the default mix
            given = data["sampler_weights"]
            given = given.items() if isinstance(given, dict) else given
            data["sampler_weights"] = tuple((str(k), float(v)) for k, v in given)
        if "augment" in data:
            given = data["augment"]
            given = given.items() if isinstance(given, dict) else given
            data["augment"] = tuple((str(k), float(v)) for k, v in given)
        if "expressions" in data:
            data["expressions"] = tuple(str(e) for e in data["expressions"])
        return cls(**data)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> "GenerateConfig":
        """``from_dict`` of a config a store recorded: a store made before
        ``sampler_weights`` existed drew the paper's mix, which ``{}`` means."""
        return cls.from_dict({"sampler_weights": {}, **data})


COMPRESSORS = ("lz4", "zstd", "none")


@dataclass(frozen=True)
class StoreConfig:
    """Layout of a store; it never changes the content of a pair.

    Attributes
    ----------
    chunk_rows : rows per chunk, the unit of reading (1024 rows of L=256
        float32 is 1 MiB per channel).
    shard_rows : rows per shard, the unit of writing and of parallel work;
        a multiple of ``chunk_rows``.
    compressor : "lz4" (blosc lz4 + byte shuffle, fast), "zstd" (level 3,
        smaller, slower) or "none", for the numeric arrays; ``expr`` always
        uses zarr's string default.
    """

    chunk_rows: int = 1024
    shard_rows: int = 16384
    compressor: str = "lz4"

    def __post_init__(self) -> None:
        check_int("chunk_rows", self.chunk_rows, 1, 1 << 24)
        check_int("shard_rows", self.shard_rows, 1, 1 << 26)
        if self.shard_rows % self.chunk_rows:
            fail(
                "shard_rows",
                self.shard_rows,
                f"it must be a multiple of chunk_rows={self.chunk_rows}",
            )
        if self.compressor not in COMPRESSORS:
            fail("compressor", self.compressor, f"choose one of {', '.join(COMPRESSORS)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StoreConfig":
        check_known(cls, data, "store")
        return cls(**data)


def config_differences(stored: Any, asked: Any) -> list[str]:
    """Human-readable list of the fields where two configs of one class differ."""
    a, b = stored.to_dict(), asked.to_dict()
    return [f"{k}: store has {a[k]!r}, asked {b[k]!r}" for k in a if a[k] != b.get(k)]
