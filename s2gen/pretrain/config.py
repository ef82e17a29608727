"""``PretrainConfig``: every setting of the pretraining stage.

Torch-free, so the CLI can build and check a config before importing torch.
A config is saved in every checkpoint (``to_dict``) and rebuilt from it
(``from_dict``); ``PretrainConfig.preset(name, **overrides)`` gives the three
tiers ``ci``, ``small`` and ``base`` (SymTime base dimensions);
``read_settings(path)`` reads a TOML/YAML/JSON file of overrides.
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2gen.checks import check_float, check_int, check_known, fail
from s2gen.config import SAMPLER_PRESETS

PRESET_NAMES = ("ci", "small", "base")
GENERATE_PRESETS = tuple(SAMPLER_PRESETS)  # --generate NAME: sarima, paper, reference, all
GENERATE_LENGTH = 512  # points of a --generate preset's series: room for 2x downsampled views
RESIZE_MODES = ("linear", "none")  # how a series reaches the encoder (s2gen.pretrain.scaling)
FRONTEND_NAMES = ("patch", "multiscale")  # registered in s2gen.pretrain.backbones.frontends
LLM_POOLS = ("mean", "last")  # the gpt2 backbone's instance embedding
LORA_TARGETS = ("c_attn", "c_proj", "c_fc")  # GPT-2's projections LoRA may adapt
RANDOM_BASE_NOTE = (
    "gpt2 backbone without --backbone-weights: the language model is randomly initialised; "
    "cross-modal transfer needs pretrained GPT-2 weights (a local Hugging Face folder)"
)
# settings of the gpt2 backbone only (other backbones must leave them at their defaults)
LLM_FIELDS = (
    "llm_layers",
    "llm_pool",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    "train_norms",
    "train_pos",
    "backbone_weights",
)
BACKBONE_NAMES = ("s2", "dilated-cnn", "gpt2")  # registered in s2gen.pretrain.backbones
# registered in s2gen.pretrain.objectives
OBJECTIVE_NAMES = ("s2", "mae", "timedrl", "ts2vec", "crops")
# The backbones each objective can train. s2, mae, timedrl and crops read an instance state
# ([CLS], or gpt2's pooled tokens for s2 and timedrl) and token states; ts2vec crops windows at
# any point and contrasts per-timestep states, max-pooled down to one timestep, which only a
# per-timestep encoder gives. Objectives combine ('+') when they share a backbone, so ts2vec
# runs alone.
OBJECTIVE_BACKBONES = {
    "s2": ("s2", "gpt2"),
    "mae": ("s2",),
    "timedrl": ("s2", "gpt2"),
    "ts2vec": ("dilated-cnn",),
    "crops": ("s2",),
}
# per backbone (``preset``)
DEFAULT_OBJECTIVE = {"s2": "s2+timedrl", "dilated-cnn": "ts2vec", "gpt2": "s2+timedrl"}
# fields that fix the series encoder's architecture (a random init of a checkpoint's shape)
ENCODER_FIELDS = (
    "backbone",
    "window",
    "patch",
    "d_model",
    "n_heads",
    "d_ff",
    "n_layers",
    "scale_token",
    "cnn_hidden",
    "cnn_depth",
    "frontend",
    "conv_kernels",
    "conv_channels",
    "conv_stride",
    *LLM_FIELDS,
)


def _check_choice(name: str, value: Any, known: tuple[str, ...]) -> None:
    """``value`` must be one of ``known``; the error lists them."""
    if value not in known:
        fail(name, value, f"choose one of {', '.join(known)}")


def objective_names(objective: str) -> tuple[str, ...]:
    """The objectives of a combination such as ``"s2+timedrl"``, in the given order."""
    return tuple(part.strip() for part in str(objective).split("+"))


def shared_backbones(names: tuple[str, ...]) -> tuple[str, ...]:
    """The backbones every objective of ``names`` can train, in ``BACKBONE_NAMES`` order."""
    return tuple(b for b in BACKBONE_NAMES if all(b in OBJECTIVE_BACKBONES[n] for n in names))


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of ``s2gen.pretrain.run`` (model, objectives, optimiser, data, logging).

    Attributes
    ----------
    backbone : the series encoder, a name of ``s2gen.pretrain.backbones``
        (``s2``: the patch transformer below; ``dilated-cnn``: TS2Vec's encoder,
        per-timestep states of width ``d_model``; ``gpt2``: a GPT-2 core, frozen
        but for LoRA adapters, settings ``llm_*``, ``lora_*``, ``train_*``).
    frontend : how a series becomes tokens for ``s2`` and ``gpt2``: ``patch``
        (non-overlapping patches of ``patch`` points, embedded linearly) or
        ``multiscale`` (parallel strided 1-D convolutions of ``conv_kernels``,
        then patches of ``patch`` feature steps, projected: SeisMoLLM).
    conv_kernels, conv_channels, conv_stride : the ``multiscale`` front end: odd
        kernel sizes of its parallel convolutions, output channels of each, and
        their common stride (the downsampling before patching).
    objective : one objective or a ``+``-joined combination of
        ``s2gen.pretrain.objectives`` (``s2``: masked series + masked symbols +
        series<->symbol contrast; ``mae``: RoBERTa-style masked patches (TiMERT);
        ``timedrl``: an instance-level term on [CLS] and patch reconstruction
        from two dropout views; ``ts2vec``: hierarchical contrast of two
        overlapping crops; ``crops``: a window against a resampled sub-span of
        it). Each objective trains the backbones of ``OBJECTIVE_BACKBONES``; a
        combination needs one they share.
    window : points per training window (a multiple of ``token_points``); series
        of other lengths are resampled to it (``resize`` at evaluation).
    patch : points per patch (SymTime: 16, non-overlapping); with the
        ``multiscale`` front end, feature steps per patch.
    d_model, n_heads, d_ff, n_layers : series encoder (pre-norm transformer);
        ``d_model`` is also the output width of the ``dilated-cnn`` backbone
        (TS2Vec: 320); for ``gpt2`` without ``backbone_weights``, the random
        base's hidden size, heads and MLP width (its depth is ``llm_layers``).
    cnn_hidden, cnn_depth : ``dilated-cnn`` backbone: hidden width (TS2Vec 64) and
        residual blocks at that width (TS2Vec 10, block i dilated by 2^i), then one
        block to ``d_model``.
    llm_layers : ``gpt2``: the first K blocks of the language model are used.
    llm_pool : ``gpt2``: the instance embedding, the mean of the last layer's
        tokens (``mean``) or the last token (``last``; GPT-2's attention is
        causal, so only the last token has seen the whole window).
    lora_rank, lora_alpha, lora_dropout, lora_targets : ``gpt2``: the LoRA
        adapters (rank r, scale alpha / r, dropout on their input), on the
        comma-separated GPT-2 projections ``lora_targets`` of each block
        (``c_attn``, ``c_proj`` (attention and MLP outputs), ``c_fc``).
    train_norms, train_pos : ``gpt2``: also train the layer norms / the
        position embeddings of the language model (else frozen).
    backbone_weights : ``gpt2``: a local Hugging Face GPT-2 folder (``config.json``
        and weights) read without any download; "" initialises the base at
        random from ``seed`` (no cross-modal transfer then).
    sym_d_model, sym_heads, sym_d_ff, sym_layers : symbol encoder.
    max_tokens : symbol tokens kept per sample; 0 sizes it from the store so that
        at least 99% of its expressions fit (the resolved value is saved).
    embed_dim : size of the shared contrastive space.
    scale_token : the window's level and scale (``scaling.level_scale``), which the
        instance normalisation removes, enter [CLS] through a linear map.
    dropout : dropout in both encoders; the ``timedrl`` term needs it > 0 (its two
        views differ only by dropout).
    series_mask_ratio : share of patches replaced by the mask token (SymTime 0.4).
    token_mask_ratio : share of symbol tokens masked for MLM (BERT 0.15).
    queue_size : momentum features kept per modality (any size; written with wrap-around).
    momentum : EMA factor m of the momentum encoders (theta_m <- m theta_m + (1 - m) theta).
    temp_init, temp_min, temp_max : learnable contrastive temperature and its clamp.
    alpha : weight of the momentum-distillation soft targets (ALBEF 0.4).
    alpha_ramp : share of the steps over which alpha ramps linearly from 0.
    w_mts, w_mlm, w_itc : weights of the ``s2`` terms (masked series, masked
        symbols, contrastive); a term of weight 0 is not computed.
    w_inst, w_rec : weights of the ``timedrl`` terms (instance-level negative
        cosine on [CLS], patch reconstruction); TimeDRL's loss is
        rec + lambda * inst, i.e. w_rec = 1 and w_inst = lambda.
    mae_ratio : share of patches the ``mae`` objective chooses (TiMERT and
        RoBERTa: 0.15); of those 80% show the mask token, 10% a random other
        patch of the batch, 10% stay.
    w_mae : weight of the ``mae`` term (MSE on the chosen patches).
    ts2vec_alpha : weight of the instance-wise term at each scale of the
        hierarchical contrastive loss, 1 - alpha that of the temporal term (0.5).
    ts2vec_mask_prob : probability that the ``ts2vec`` objective masks a
        timestamp (zeroes its latent vector) in each view (TS2Vec: 0.5).
    w_ts2vec : weight of the ``ts2vec`` term.
    w_crop : weight of the ``crops`` term (NT-Xent between a window and a resampled
        sub-span of it, on projected [CLS] states).
    crop_view_min : the ``crops`` view is a sub-span of U(crop_view_min, 1) of the window.
    crop_temp : temperature of the ``crops`` NT-Xent (SimCLR 0.1).
    crop_prob : share of training windows cut from a random span of the series
        and linearly resampled to ``window`` points (the others are plain windows).
    crop_min, crop_max : the span's length in windows, log-uniform in
        [crop_min, crop_max] (capped by the series length): below 1 a stretched
        short span (as short real series are resized at evaluation), above 1 a
        downsampled long one (a coarser view of the series).
    batch_size : samples per step and per process.
    steps : optimiser steps of the whole run (the schedule spans exactly these).
    lr, min_lr : peak and final learning rate (linear warm-up, then cosine).
    warmup : share of the steps spent warming up.
    weight_decay : AdamW decay on weight matrices (never on biases, norms,
        embeddings, positions, tokens or the temperature).
    grad_clip : gradient-norm clip (0 turns it off).
    use_inputs : also train on a store's input channels x_i as series-only
        samples (always so when no objective reads symbols).
    val_permille, reference_permille : rows with ``seed % 1000 < val_permille`` are
        the validation split, the next ``reference_permille`` per mille are the
        "reference" split (kept for OATS); both are never trained on.
    val_samples : held-out windows used by validation (retrieval galleries of 256).
    val_every, ckpt_every, log_every : in steps.
    buffer_chunks : store chunks read and shuffled together (the shuffle buffer).
    data_shares : expected share of each training batch drawn from each ``--data``
        source, in the order given (normalised; 0 leaves a source out of training);
        empty: every chunk of every source once per epoch, so sources weigh by size.
    num_workers : DataLoader worker processes per training process.
    amp : bf16 autocast on CUDA (ignored on CPU); similarities and softmaxes stay fp32.
    seed : seeds model init, masks, dropout and data order.
    """

    backbone: str = "s2"
    objective: str = "s2+timedrl"
    window: int = 256
    patch: int = 16
    frontend: str = "patch"
    conv_kernels: tuple[int, ...] = (3, 7, 15)
    conv_channels: int = 16
    conv_stride: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 256
    n_layers: int = 3
    cnn_hidden: int = 64
    cnn_depth: int = 10
    llm_layers: int = 6
    llm_pool: str = "mean"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: str = "c_attn"
    train_norms: bool = False
    train_pos: bool = False
    backbone_weights: str = ""
    sym_d_model: int = 128
    sym_heads: int = 4
    sym_d_ff: int = 256
    sym_layers: int = 3
    max_tokens: int = 0
    embed_dim: int = 64
    scale_token: bool = True
    dropout: float = 0.1
    series_mask_ratio: float = 0.4
    token_mask_ratio: float = 0.15
    queue_size: int = 8192
    momentum: float = 0.995
    temp_init: float = 0.07
    temp_min: float = 0.05
    temp_max: float = 0.5
    alpha: float = 0.4
    alpha_ramp: float = 0.3
    w_mts: float = 1.0
    w_mlm: float = 1.0
    w_itc: float = 1.0
    w_inst: float = 1.0
    w_rec: float = 0.1
    mae_ratio: float = 0.15
    w_mae: float = 1.0
    ts2vec_alpha: float = 0.5
    ts2vec_mask_prob: float = 0.5
    w_ts2vec: float = 1.0
    w_crop: float = 1.0
    crop_view_min: float = 0.5
    crop_temp: float = 0.1
    crop_prob: float = 0.5
    crop_min: float = 0.1
    crop_max: float = 4.0
    batch_size: int = 128
    steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup: float = 0.05
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    use_inputs: bool = False
    val_permille: int = 10
    reference_permille: int = 10
    val_samples: int = 1024
    val_every: int = 200
    ckpt_every: int = 200
    log_every: int = 10
    buffer_chunks: int = 4
    data_shares: tuple[float, ...] = ()
    num_workers: int = 1
    amp: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("backbone", self.backbone, BACKBONE_NAMES)
        names = objective_names(self.objective)
        unknown = [n for n in names if n not in OBJECTIVE_NAMES]
        if unknown or len(set(names)) != len(names):
            fail(
                "objective",
                self.objective,
                f"give one or more distinct names of {', '.join(OBJECTIVE_NAMES)} joined by '+' "
                "(e.g. s2+timedrl)",
            )
        shared = shared_backbones(names)
        if not shared:
            trains = "; ".join(f"{n}: {', '.join(OBJECTIVE_BACKBONES[n])}" for n in names)
            fail(
                "objective",
                self.objective,
                f"its objectives train different backbones ({trains}); combine objectives of "
                "one backbone (run ts2vec alone)",
            )
        if self.backbone not in shared:
            fail(
                "backbone",
                self.backbone,
                f"objective {self.objective!r} trains the {' or '.join(shared)} backbone: "
                f"use --backbone {shared[0]} (backbone={shared[0]!r})",
            )
        self._check_frontend()
        if self.backbone == "dilated-cnn" and self.frontend != "patch":
            fail("frontend", self.frontend, "it applies to backbones s2 and gpt2 only")
        check_int("window", self.window, 2 * self.token_points, 1 << 16)
        if self.window % self.token_points:
            fail("window", self.window, f"it must be a multiple of {self._token_text()}")
        self._check_llm()
        for name in ("d_model", "sym_d_model", "d_ff", "sym_d_ff", "embed_dim"):
            check_int(name, getattr(self, name), 1, 1 << 16)
        for name in ("n_layers", "sym_layers"):
            check_int(name, getattr(self, name), 1, 128)
        check_int("cnn_hidden", self.cnn_hidden, 1, 1 << 16)
        check_int("cnn_depth", self.cnn_depth, 1, 20)
        for heads, dim in (("n_heads", "d_model"), ("sym_heads", "sym_d_model")):
            check_int(heads, getattr(self, heads), 1, 256)
            if getattr(self, dim) % getattr(self, heads):
                fail(heads, getattr(self, heads), f"it must divide {dim}={getattr(self, dim)}")
        check_int("max_tokens", self.max_tokens, 0, 4096)
        check_float("dropout", self.dropout, 0.0, 0.9)
        if "timedrl" in names and self.w_inst > 0 and self.dropout <= 0:
            fail(
                "dropout",
                self.dropout,
                "the timedrl objective compares two dropout views of a window: use dropout > 0 "
                "(e.g. 0.1), or set w_inst = 0",
            )
        check_float("series_mask_ratio", self.series_mask_ratio, 0.0, 1.0)
        check_float("token_mask_ratio", self.token_mask_ratio, 0.0, 1.0)
        check_int("queue_size", self.queue_size, 0, 1 << 24)
        check_float("momentum", self.momentum, 0.0, 1.0)
        check_float("temp_min", self.temp_min, 1e-4, 10.0)
        check_float("temp_max", self.temp_max, self.temp_min, 10.0)
        check_float("temp_init", self.temp_init, self.temp_min, self.temp_max)
        check_float("alpha", self.alpha, 0.0, 1.0)
        check_float("alpha_ramp", self.alpha_ramp, 0.0, 1.0)
        check_float("mae_ratio", self.mae_ratio, 0.0, 1.0, open_low=True)
        check_float("ts2vec_alpha", self.ts2vec_alpha, 0.0, 1.0)
        check_float("ts2vec_mask_prob", self.ts2vec_mask_prob, 0.0, 1.0, open_low=True)
        check_float("crop_view_min", self.crop_view_min, 0.05, 1.0)
        check_float("crop_temp", self.crop_temp, 1e-3, 10.0)
        for name in ("w_mts", "w_mlm", "w_itc", "w_inst", "w_rec", "w_mae", "w_ts2vec", "w_crop"):
            check_float(name, getattr(self, name), 0.0, 1e6)
        check_float("crop_prob", self.crop_prob, 0.0, 1.0)
        check_float("crop_min", self.crop_min, 0.01, 1.0)
        check_float("crop_max", self.crop_max, 1.0, 64.0)
        check_int("batch_size", self.batch_size, 2, 1 << 20)
        check_int("steps", self.steps, 1)
        check_float("lr", self.lr, 0.0, 10.0)
        check_float("min_lr", self.min_lr, 0.0, self.lr)
        check_float("warmup", self.warmup, 0.0, 1.0)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_float("grad_clip", self.grad_clip, 0.0)
        check_int("val_permille", self.val_permille, 0, 1000)
        check_int("reference_permille", self.reference_permille, 0, 1000 - self.val_permille)
        check_int("val_samples", self.val_samples, 0)
        for name in ("val_every", "ckpt_every", "log_every", "buffer_chunks"):
            check_int(name, getattr(self, name), 1)
        check_int("num_workers", self.num_workers, 0, 256)
        check_int("seed", self.seed, 0, (1 << 63) - 1)
        self._check_shares()

    def _check_shares(self) -> None:
        shares = self.data_shares
        if isinstance(shares, list):  # a list from JSON/TOML: stored as a tuple
            object.__setattr__(self, "data_shares", shares := tuple(shares))
        if not isinstance(shares, tuple):
            fail("data_shares", shares, "give a list of shares, one per --data source")
        for share in shares:
            check_float("data_shares", share, 0.0, 1e6)
        if shares and sum(shares) <= 0:
            fail("data_shares", shares, "at least one share must be positive")

    def _check_frontend(self) -> None:
        _check_choice("frontend", self.frontend, FRONTEND_NAMES)
        check_int("patch", self.patch, 1, 4096)
        kernels = self.conv_kernels
        if isinstance(kernels, (list, tuple)):  # a list from JSON/TOML: stored as a tuple
            object.__setattr__(self, "conv_kernels", kernels := tuple(kernels))
        if not isinstance(kernels, tuple) or not kernels:
            fail(
                "conv_kernels",
                kernels,
                "give a non-empty list of odd kernel sizes, e.g. [3, 7, 15]",
            )
        for k in kernels:
            check_int("conv_kernels", k, 1, 1023)
            if k % 2 == 0:
                fail("conv_kernels", kernels, "every kernel size must be odd (centred padding)")
        check_int("conv_channels", self.conv_channels, 1, 4096)
        check_int("conv_stride", self.conv_stride, 1, 256)

    def _token_text(self) -> str:
        if self.frontend == "multiscale":
            return f"conv_stride * patch = {self.conv_stride} * {self.patch}"
        return f"patch={self.patch}"

    def _check_llm(self) -> None:
        """The ``gpt2`` settings: valid, and left at their defaults by other backbones."""
        check_int("llm_layers", self.llm_layers, 1, 128)
        _check_choice("llm_pool", self.llm_pool, LLM_POOLS)
        check_int("lora_rank", self.lora_rank, 1, 4096)
        check_float("lora_alpha", self.lora_alpha, 0.0, 1e6, open_low=True)
        check_float("lora_dropout", self.lora_dropout, 0.0, 0.9)
        targets = self.lora_target_names
        if not targets or any(t not in LORA_TARGETS for t in targets):
            fail(
                "lora_targets",
                self.lora_targets,
                f"give comma-separated names of {', '.join(LORA_TARGETS)} (e.g. c_attn,c_proj)",
            )
        for name in ("train_norms", "train_pos"):
            if not isinstance(getattr(self, name), bool):
                fail(name, getattr(self, name), "it must be true or false")
        if not isinstance(self.backbone_weights, str):
            fail("backbone_weights", self.backbone_weights, "give a folder path or ''")
        if self.backbone != "gpt2":
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name in LLM_FIELDS:
                if getattr(self, name) != defaults[name]:
                    fail(name, getattr(self, name), "it applies to backbone gpt2 only")

    @property
    def lora_target_names(self) -> tuple[str, ...]:
        """The GPT-2 projections of ``lora_targets``, in the given order."""
        return tuple(t.strip() for t in str(self.lora_targets).split(",") if t.strip())

    @property
    def token_points(self) -> int:
        """Series points one token covers: ``patch``, times ``conv_stride`` for ``multiscale``."""
        return self.patch * (self.conv_stride if self.frontend == "multiscale" else 1)

    @property
    def n_patches(self) -> int:
        """Tokens per window, P = window / token_points."""
        return self.window // self.token_points

    @property
    def objectives(self) -> tuple[str, ...]:
        """The objective names of ``objective``."""
        return objective_names(self.objective)

    @property
    def needs_symbols(self) -> bool:
        """Whether an objective trains on the expressions (needs an S2 store)."""
        return "s2" in self.objectives

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "PretrainConfig":
        """The ``ci``, ``small`` or ``base`` tier with ``overrides`` applied.

        ``ci`` trains in about a minute on 2 CPU cores, ``small`` is the
        CPU tier (tens of minutes on 2 cores), ``base`` has SymTime's base
        series encoder (d 512, 8 heads, d_ff 2048, 6 layers) for GPUs.

        When ``overrides`` name a backbone but no objective, and the default
        objective cannot train it, the objective is the backbone's
        ``DEFAULT_OBJECTIVE`` (``dilated-cnn`` -> ``ts2vec``); when they name
        an objective but no backbone, and the default backbone does not fit,
        the backbone is the first its objectives share.
        """
        if name not in PRESETS:
            raise ValueError(f"preset={name!r} is unknown; choose one of {', '.join(PRESETS)}")
        check_known(cls, overrides)
        settings = {**PRESETS[name], **overrides}
        backbone, objective = settings.get("backbone"), settings.get("objective")
        if objective is None and backbone in DEFAULT_OBJECTIVE:
            if backbone not in shared_backbones(objective_names(cls.objective)):
                settings["objective"] = DEFAULT_OBJECTIVE[backbone]
        elif backbone is None and objective is not None:
            names = objective_names(objective)
            if all(n in OBJECTIVE_BACKBONES for n in names):
                shared = shared_backbones(names)
                if shared and cls.backbone not in shared:
                    settings["backbone"] = shared[0]
        return cls(**settings)

    def replace(self, **changes: Any) -> "PretrainConfig":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (saved in checkpoints; tuples become lists)."""
        data = dataclasses.asdict(self)
        data["conv_kernels"] = list(self.conv_kernels)
        data["data_shares"] = list(self.data_shares)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PretrainConfig":
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        check_known(cls, data, "pretraining")
        return cls(**data)


def read_settings(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML, YAML or JSON file (by suffix): a table of field -> value.

    Only parsers that never execute code are used (``tomllib``, ``yaml.safe_load``,
    ``json``). Raises ValueError naming the file and what is wrong with it.
    """
    path = Path(path)
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:
                raise ValueError(
                    f"{path}: YAML needs PyYAML (pip install pyyaml), or use TOML/JSON"
                ) from exc
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"{path}: give a .toml, .yaml/.yml or .json file")
    except ValueError:
        raise
    except Exception as exc:  # the parsers' own error types (tomllib, yaml)
        raise ValueError(f"{path} cannot be parsed: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}; give a table of settings")
    return data


PRESETS: dict[str, dict[str, Any]] = {
    "ci": dict(
        window=128,
        d_model=64,
        n_heads=4,
        d_ff=128,
        n_layers=2,
        sym_d_model=64,
        sym_heads=4,
        sym_d_ff=128,
        sym_layers=2,
        embed_dim=32,
        queue_size=1024,
        momentum=0.99,
        batch_size=64,
        steps=300,
        lr=1e-3,
        min_lr=2e-5,
        val_samples=256,
        val_every=100,
        ckpt_every=100,
        log_every=10,
        num_workers=0,
    ),
    "small": dict(steps=1500, val_every=250, ckpt_every=250),
    "base": dict(
        d_model=512,
        n_heads=8,
        d_ff=2048,
        n_layers=6,
        sym_d_model=256,
        sym_heads=8,
        sym_d_ff=1024,
        sym_layers=4,
        embed_dim=128,
        queue_size=65536,
        batch_size=256,
        steps=100_000,
        lr=5e-4,
        warmup=0.02,
        val_every=2000,
        ckpt_every=2000,
        log_every=50,
        num_workers=4,
    ),
}
