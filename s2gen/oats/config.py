"""Frozen configurations of the OATS stage: the generator and the augmentation.

Both round-trip through JSON (``from_dict(to_dict())``) so that they can be
saved in checkpoints; ``__post_init__`` names the bad field and the fix.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from s2gen.checks import check_float, check_int, check_known, fail

LOSSES = ("mse", "l1")
SIMILARITIES = ("dot", "cosine")
SELECTIONS = ("tsis", "random")
MIXES = ("replace", "add")
SYNTHESES = ("guided", "unguided", "augment")
TERMINAL_ALPHA_BAR = 1e-3  # the last diffusion step must leave less signal than this


def terminal_alpha_bar(timesteps: int, beta_start: float, beta_end: float) -> float:
    """abar_T = prod_t (1 - beta_t) of the schedule beta_t = linspace(sqrt(b0), sqrt(b1), T)^2."""
    root0, root1 = math.sqrt(beta_start), math.sqrt(beta_end)
    step = (root1 - root0) / (timesteps - 1)
    return math.prod(1.0 - (root0 + i * step) ** 2 for i in range(timesteps))


class _Dict:
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        check_known(cls, data, cls.__name__)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GeneratorConfig(_Dict):
    """The guided diffusion generator: architecture, noise schedule and training.

    Attributes
    ----------
    channels : U-Net widths at lengths L, L/2, L/4 (three entries, each a
        multiple of 8 for GroupNorm(8)).
    embed_dim : width of the time + condition embedding fed to every ResBlock.
    attention_heads : heads of the self-attention at L/4 (divides channels[2]).
    prototypes : K, the number of learned prototypes of the prompt conditioner.
    prototype_dim : width of a prototype (the condition vector).
    prompt_channels : width of the conditioner's two strided convolutions.
    timesteps : T, diffusion steps of training.
    beta_start, beta_end : the schedule, beta_t = linspace(sqrt(start), sqrt(end), T)^2;
        TimeDP/OATS's 5e-4 and 0.1 (abar_T = 6.0e-4 at T = 200). A schedule
        whose abar_T is 1e-3 or more is refused: sampling starts from pure
        noise, so the last training step must hold (almost) no signal (with
        0.05, abar_T = 0.029: the model never learnt to start from noise).
    loss : "mse" or "l1" on the predicted noise (epsilon parameterisation).
    cond_drop : probability that a training sample's condition is replaced by
        the learned null condition (enables classifier-free guidance).
    steps : optimiser steps; batch_size : windows per step.
    lr : AdamW learning rate (linear warm-up over ``warmup`` steps);
        weight_decay : AdamW weight decay.
    ema_decay : decay of the EMA weights used for sampling.
    subset : fraction of a store's rows read to train the generator.
    ddim_steps : default DDIM steps of sampling; guidance_scale : default CFG
        scale w (1 = plain conditional prediction, as OATS samples).
    seed : seed of initialisation, batches, noise and condition dropout.
    """

    channels: tuple[int, ...] = (32, 64, 64)
    embed_dim: int = 128
    attention_heads: int = 4
    prototypes: int = 16
    prototype_dim: int = 64
    prompt_channels: int = 32
    timesteps: int = 200
    beta_start: float = 5e-4
    beta_end: float = 0.1
    loss: str = "mse"
    cond_drop: float = 0.2
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    subset: float = 0.05
    ddim_steps: int = 20
    guidance_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.channels) != 3:
            fail("channels", self.channels, "give three widths, e.g. (32, 64, 64)")
        for c in self.channels:
            check_int("channels[]", c, 8, 4096)
            if c % 8:
                fail("channels", self.channels, "every width must be a multiple of 8")
        check_int("embed_dim", self.embed_dim, 8, 4096)
        check_int("attention_heads", self.attention_heads, 1, 64)
        if self.channels[2] % self.attention_heads:
            fail("attention_heads", self.attention_heads, "it must divide channels[2]")
        check_int("prototypes", self.prototypes, 1, 1024)
        check_int("prototype_dim", self.prototype_dim, 1, 4096)
        check_int("prompt_channels", self.prompt_channels, 8, 4096)
        if self.prompt_channels % 8:
            fail("prompt_channels", self.prompt_channels, "it must be a multiple of 8")
        check_int("timesteps", self.timesteps, 2, 100_000)
        check_float("beta_start", self.beta_start, 0.0, 0.5, open_low=True)
        check_float("beta_end", self.beta_end, self.beta_start, 0.999)
        abar = terminal_alpha_bar(self.timesteps, self.beta_start, self.beta_end)
        if abar >= TERMINAL_ALPHA_BAR:
            fail(
                "beta_end",
                self.beta_end,
                f"abar_T = {abar:.2g} leaves signal at the last step (sampling starts from "
                f"noise); raise beta_end or timesteps until abar_T < {TERMINAL_ALPHA_BAR:g} "
                "(e.g. 0.1 with 200 steps) and retrain the generator",
            )
        if self.loss not in LOSSES:
            fail("loss", self.loss, f"choose one of {', '.join(LOSSES)}")
        check_float("cond_drop", self.cond_drop, 0.0, 1.0)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1, 1 << 16)
        check_float("lr", self.lr, 0.0, 1.0, open_low=True)
        check_int("warmup", self.warmup, 0)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0)
        check_float("subset", self.subset, 0.0, 1.0, open_low=True)
        check_int("ddim_steps", self.ddim_steps, 1, self.timesteps)
        check_float("guidance_scale", self.guidance_scale, 0.0, 100.0)
        check_int("seed", self.seed, 0)


@dataclass(frozen=True)
class OatsConfig(_Dict):
    """Influence scoring, the score cache and augmentation during pretraining.

    Attributes
    ----------
    explore_prob : probability that a step re-scores its whole batch (explore);
        otherwise the cache is read and only uncached or stale rows are scored.
        1 scores every step (the OATS README run).
    max_age : a cached score older than this many steps is stale and re-scored.
    after : first step that filters and generates (before it batches pass
        unchanged); the OATS default is the end of the learning-rate warm-up.
    keep : fraction of the batch kept as guides (top by TSIS); each kept row
        that passes the SNR gate guides exactly one generated series (OATS and
        the TimeCraft code: one per kept row, unweighted). At most 0.5 with
        mix "replace".
    mix : "replace" (OATS): each generated row takes the place of one of the
        lowest-ranked real rows, so the batch size stays B; when gated rows
        leave fewer guides, fewer rows are generated and the real rows they
        would have replaced stay. "add": the real batch is kept whole and the
        generated rows are appended (B + guides rows), in the masked-series
        loss only, with weight ``generated_weight``.
    generated_weight : weight of a generated row in the masked-series loss
        with mix "add" (real rows weigh 1; the ``sample_weight`` batch key).
    synthesis : how a kept row's new row is made: "guided" (OATS: the
        generator prompted with the kept row), "unguided" (the generator with
        its null condition, de-normalised with the kept row's mean and
        standard deviation, so only the shape is unguided) or "augment"
        (jitter + mixup of the kept rows, ``s2gen.pretrain.augmentation``; no
        generator). The last two are ablations of the benchmark.
    similarity : "dot" (TSIS = lr * <g_i, g_ref>) or "cosine".
    selection : "tsis" keeps the top of the batch by TSIS; "random" keeps a
        random share and guides with it (the random-guide ablation: no
        scoring, no gate).
    snr_threshold_db : absolute SNR gate (the paper's k): samples whose SNR
        (``s2gen.oats.snr``, periodogram noise floor) is below this get
        TSIS = -inf; -inf (default) turns it off.
    snr_quantile : relative SNR gate: the floor(snr_quantile * B) samples of
        lowest SNR in each batch get TSIS = -inf; 0 turns it off. On by
        default (0.25) instead of an absolute k because the share of
        noise-like windows is a property of the store: at 0 dB the absolute
        gate rejects 84 % of a default store's output windows (its i.i.d.
        mixture inputs give white outputs) and 54 % of the reference mix, and
        would leave a handful of guides per batch. The relative gate keeps the
        paper's rule (the noisiest samples never guide) at a fixed share.
    reference_size : most reference series used for the reference gradient.
    contrastive_weight : weight of the per-sample series->symbol term added
        to the masked-series loss that is scored: the training step's t2s loss
        of one query (same features, keys, temperature and distilled targets,
        without in-batch negatives; ``s2gen.oats.wiring.SeriesObjective``);
        0 = masked modelling only.
    param_prefixes : parameters whose gradients are scored, by name prefix;
        empty = every trainable parameter.
    guidance_scale, ddim_steps : generator sampling settings during training.
    seed : seed of the explore/exploit draws and of generation.
    """

    explore_prob: float = 0.3
    max_age: int = 500
    after: int = 0
    keep: float = 0.5
    similarity: str = "dot"
    selection: str = "tsis"
    mix: str = "replace"
    synthesis: str = "guided"
    generated_weight: float = 0.5
    snr_threshold_db: float = -math.inf
    snr_quantile: float = 0.25
    reference_size: int = 128
    contrastive_weight: float = 0.0
    param_prefixes: tuple[str, ...] = ()
    guidance_scale: float = 1.0
    ddim_steps: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check_float("explore_prob", self.explore_prob, 0.0, 1.0)
        check_int("max_age", self.max_age, 1)
        check_int("after", self.after, 0)
        check_float("keep", self.keep, 0.0, 1.0, open_low=True)
        if self.similarity not in SIMILARITIES:
            fail("similarity", self.similarity, f"choose one of {', '.join(SIMILARITIES)}")
        if self.selection not in SELECTIONS:
            fail("selection", self.selection, f"choose one of {', '.join(SELECTIONS)}")
        if self.mix not in MIXES:
            fail("mix", self.mix, f"choose one of {', '.join(MIXES)}")
        if self.synthesis not in SYNTHESES:
            fail("synthesis", self.synthesis, f"choose one of {', '.join(SYNTHESES)}")
        if self.mix == "replace" and self.keep > 0.5:
            fail("keep", self.keep, "with mix 'replace' keep at most 0.5 (or use mix 'add')")
        check_float("generated_weight", self.generated_weight, 0.0, 100.0, open_low=True)
        if not (self.snr_threshold_db == -math.inf or math.isfinite(self.snr_threshold_db)):
            fail("snr_threshold_db", self.snr_threshold_db, "give a finite dB value or -inf")
        check_float("snr_quantile", self.snr_quantile, 0.0, 1.0)
        check_int("reference_size", self.reference_size, 1, 1 << 16)
        check_float("contrastive_weight", self.contrastive_weight, 0.0, 100.0)
        for prefix in self.param_prefixes:
            if not isinstance(prefix, str) or not prefix:
                fail(
                    "param_prefixes", self.param_prefixes, "give non-empty parameter name prefixes"
                )
        check_float("guidance_scale", self.guidance_scale, 0.0, 100.0)
        check_int("ddim_steps", self.ddim_steps, 1, 100_000)
        check_int("seed", self.seed, 0)
