"""Build the OATS hook of a pretraining run from its CLI options (``s2gen pretrain --oats``).

The pretraining model's ``forward(series, mask)`` is its per-sample masked-series
loss (raw windows in, each normalised with its visible points); with
``contrastive_weight`` > 0 the per-sample series->symbol term of the ``s2``
objective's training step is added (``SeriesObjective``). Scores use fixed per-window patch
masks (drawn from the window key) so that a re-score of the same window is
comparable. The default reference set is the training store's "reference"
split (10 <= seed % 1000 < 20 with the default permilles), disjoint from
validation and never trained on.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from s2gen.oats.augment import OatsHook
from s2gen.oats.config import OatsConfig
from s2gen.oats.generator import Generator
from s2gen.oats.reference import reference_series
from s2gen.oats.snr import MIN_LENGTH

log = logging.getLogger(__name__)

S2 = "objectives.s2."  # parameter prefix of the s2 objective's heads
SCORED_PREFIXES = ("series.", S2 + "patch_head.")  # what the masked-series loss depends on
CONTRASTIVE_FIELDS = ("key", "valid", "target", "has_symbol")  # ``symbol_targets`` output


def series_sample_loss(model, state, sample):
    """Per-sample masked-series loss of a ``Pretrainer`` for ``torch.func``."""
    return functional_call(model, state, (sample["series"][None], sample["mask"][None]))[0]


class SeriesObjective(nn.Module):
    """The scored per-sample loss: masked-series error + weight * series->symbol term.

    The series->symbol term of sample i is the training step's t2s loss of
    that one query (``S2Objective.losses``): the same series feature
    (of the clean window, ALBEF's choice, which the ``s2`` objective makes), the
    same keys (its own momentum symbol key, then the momentum queue; queue
    entries of the same expression and empty slots left out), the same
    temperature and the same momentum-distilled soft targets at the step's
    alpha. Keys and targets come in detached (``symbol_targets``), so the term
    is a function of sample i alone. The one intended difference: training
    also contrasts with the other rows of the batch (in-batch negatives), which
    would couple the samples' gradients; with no valid in-batch negative (a
    batch of one, or of one expression) the two coincide exactly. (Scores are
    computed before the step's momentum update, so the momentum features lag
    the step's by one EMA update, a change of 1 - momentum.) Samples without a
    symbol get the masked-series error only.
    """

    def __init__(self, model: nn.Module, weight: float) -> None:
        super().__init__()
        self.model = model
        self.weight = weight

    def contrastive(self, series, key, valid, target) -> torch.Tensor:
        """Per-sample t2s loss (B,) of the training step (one query each).

        series (B, L) raw windows, key (B, e), valid and target (B, 1 + Q): own
        key first, then the queue.
        """
        from s2gen.pretrain.scaling import instance_norm, level_scale

        backbone, s2 = self.model.series, self.model.objectives["s2"]
        hidden = backbone(instance_norm(series), stats=level_scale(series))  # clean, (B, P + 1, d)
        t = s2.series_feature(hidden)  # (B, e)
        logits = torch.cat([(t * key).sum(-1, keepdim=True), t @ s2.queue_symbol.T], dim=1)
        logp = (logits / s2.temp.detach()).float().masked_fill(~valid, float("-inf"))
        logp = logp.log_softmax(dim=1)  # (B, 1 + Q)
        return -torch.where(valid, target * logp, 0.0).sum(dim=1)

    def forward(self, series, mask, key, valid, target, has_symbol) -> torch.Tensor:
        from s2gen.pretrain.losses import masked_patch_error
        from s2gen.pretrain.objectives.s2 import patch_visibility
        from s2gen.pretrain.scaling import instance_norm, level_scale

        backbone, s2 = self.model.series, self.model.objectives["s2"]
        patch = backbone.token_points
        visible = patch_visibility(mask, patch)
        z = instance_norm(series, visible)  # (B, window), visible points only
        hidden = backbone(z, mask, level_scale(series, visible))  # (B, P + 1, d)
        recon = s2.patch_head(backbone.token_states(hidden))  # (B, P, patch)
        error = masked_patch_error(recon, z.unflatten(-1, (-1, patch)), mask)  # (B,)
        nce = self.contrastive(series, key, valid, target)  # (B,)
        return error + self.weight * has_symbol.to(error.dtype) * nce


def contrastive_sample_loss(weight: float):
    """Per-sample loss of ``SeriesObjective`` for ``torch.func`` (sample dict as ``forward``)."""

    def loss(model, state, sample):
        objective = SeriesObjective(model, weight)
        args = tuple(sample[k][None] for k in ("series", "mask", *CONTRASTIVE_FIELDS))
        return functional_call(objective, {f"model.{k}": v for k, v in state.items()}, args)[0]

    return loss


@torch.no_grad()
def symbol_targets(model, rows: dict, alpha: float) -> dict[str, torch.Tensor]:
    """Detached keys and distillation targets of the per-sample t2s term of batch ``rows``.

    As the training step: the momentum symbol key of each row's expression
    (padding for rows without a symbol), the momentum series feature of the
    clean window, and targets alpha * softmax(momentum logits over the valid
    keys) + (1 - alpha) * one-hot(own key) (ALBEF).

    Returns
    -------
    ``key`` (m, e), ``valid`` and ``target`` (m, 1 + Q) (own key first, then
    the queue), ``has_symbol`` (m,).
    """
    from s2gen.pretrain.scaling import instance_norm, level_scale

    s2 = model.objectives["s2"]
    has = rows["has_symbol"]
    tokens = rows["tokens"].masked_fill(~has[:, None], s2.pad_id)
    key = s2.symbol_feature(s2.symbol_m(tokens), momentum=True)  # (m, e)
    series = rows["series"]  # (m, L) raw
    clean = s2.series_m(instance_norm(series), stats=level_scale(series))  # (m, P + 1, d)
    t_m = s2.series_feature(clean, momentum=True)  # (m, e)
    ids, queue_ids = rows["expr_id"], s2.queue_ids
    in_queue = (queue_ids[None, :] >= 0) & (queue_ids[None, :] != ids[:, None])  # (m, Q)
    valid = torch.cat([torch.ones_like(in_queue[:, :1]), in_queue], dim=1)  # (m, 1 + Q)
    logits = torch.cat([(t_m * key).sum(-1, keepdim=True), t_m @ s2.queue_symbol.T], 1)
    soft = (logits / s2.temp).float().masked_fill(~valid, float("-inf")).softmax(dim=1)
    target = alpha * soft
    target[:, 0] += 1.0 - alpha
    return {"key": key, "valid": valid, "target": target, "has_symbol": has}


def fixed_mask_maker(
    n_patches: int, ratio: float, seed: int
) -> Callable[[np.ndarray], torch.Tensor]:
    """keys (m,) -> (m, n_patches) bool masks, a pure function of (seed, key)."""
    from s2gen.pretrain.losses import draw_patch_mask

    def make(keys: np.ndarray) -> torch.Tensor:
        masks = []
        for key in np.asarray(keys, np.int64).tolist():
            g = torch.Generator().manual_seed((seed * 0x9E3779B1 + key) % (1 << 63))
            masks.append(draw_patch_mask(1, n_patches, ratio, g)[0])
        return torch.stack(masks)  # (m, P)

    return make


def reference_batch(cfg, store_path: str, ref, size: int) -> dict[str, torch.Tensor]:
    """The reference set as rows: ``series`` (R, window), ``tokens``, ``expr_id``, ``has_symbol``.

    ``ref`` None (or empty): the training store's reference split (centred
    windows, with their expressions); otherwise one ``--oats-ref`` source or a
    list of them (stores, real series files, shipped classification set names:
    ``s2gen.oats.reference``), without symbols. Windows are raw, as in training
    batches: the model normalises them.
    """
    from s2gen.pretrain.stream import held_out_set

    if not ref:
        batch = held_out_set(store_path, cfg, "reference", limit=size)
        if batch is None:
            raise ValueError(
                f"{store_path} has no reference rows (seed % 1000 in the reference permilles); "
                "give --oats-ref with real series, or use a larger store"
            )
        return {k: batch[k] for k in ("series", "tokens", "expr_id", "has_symbol")}
    sources = [ref] if isinstance(ref, (str, Path)) else list(ref)
    windows = reference_series([str(s) for s in sources], cfg.window, size)
    n = len(windows)
    return {
        "series": torch.as_tensor(windows),
        "tokens": torch.zeros((n, 1), dtype=torch.int64),
        "expr_id": torch.full((n,), -1, dtype=torch.int64),
        "has_symbol": torch.zeros(n, dtype=torch.bool),
    }


def oats_hook_from_options(
    cfg,
    store_path: str,
    generator_path: str | None,
    ref=None,
    explore_prob: float = 0.3,
    after: int | None = None,
    lr_at: Callable[[int], float] | None = None,
    **settings,
) -> OatsHook:
    """The ``batch_hook`` of ``s2gen.pretrain.run`` for ``--oats``.

    Parameters
    ----------
    cfg : the run's ``PretrainConfig``.
    store_path : the training store (its reference split is the default reference set).
    generator_path : a checkpoint of ``s2gen oats train-generator``; its series
        length must equal ``cfg.window``. None only with ``synthesis="augment"``.
    ref : reference sources (``reference_batch``): one or a list of stores,
        series files and classification set names; None = the reference split.
    explore_prob : probability of re-scoring a whole batch.
    after : first augmented step; None = the end of the warm-up.
    lr_at : learning rate at a step; None = the run's schedule
        (``s2gen.pretrain.train.lr_at``).
    settings : further ``OatsConfig`` fields (keep, mix, generated_weight,
        snr_quantile, contrastive_weight, ...).
    """
    from s2gen.pretrain.data import resolve_max_tokens
    from s2gen.pretrain.train import alpha_at
    from s2gen.pretrain.train import lr_at as schedule
    from s2gen.store import open as open_store

    cfg, _ = resolve_max_tokens(open_store(store_path), cfg)  # as run() does: tokens are cut alike
    if generator_path is None:
        if settings.get("synthesis") != "augment":
            raise ValueError("OATS needs a generator checkpoint (--oats GEN.pt)")
        generator = None
    else:
        generator = Generator.load(generator_path)
    if generator is not None and generator.length != cfg.window:
        raise ValueError(
            f"the generator {generator_path} makes series of length {generator.length}, the "
            f"pretraining window is {cfg.window}: retrain it with `s2gen oats train-generator "
            f"--window {cfg.window}`"
        )
    if after is None:
        after = int(round(cfg.warmup * cfg.steps))
    weight = settings.get("contrastive_weight", 0.0)
    prefixes = SCORED_PREFIXES + ((S2 + "series_proj.",) if weight > 0 else ())
    settings.setdefault("param_prefixes", prefixes)
    oats_cfg = OatsConfig(explore_prob=explore_prob, after=after, seed=cfg.seed, **settings)
    gate_on = oats_cfg.snr_quantile > 0 or oats_cfg.snr_threshold_db > -np.inf
    if gate_on and cfg.window < MIN_LENGTH:
        raise ValueError(
            f"the SNR gate needs windows of at least {MIN_LENGTH} points, the pretraining "
            f"window is {cfg.window}: use a longer --window or turn the gate off "
            "(snr_quantile=0, snr_threshold_db=-inf)"
        )
    make_mask = fixed_mask_maker(cfg.n_patches, cfg.series_mask_ratio, cfg.seed)
    reference = reference_batch(cfg, store_path, ref, oats_cfg.reference_size)
    n_ref = len(reference["series"])
    reference["mask"] = make_mask(-1 - np.arange(n_ref))  # negative keys: never a training key
    log.info(
        "OATS: %d reference windows from %s, generator %s, explore_prob %.2f, selection %s, "
        "synthesis %s, mix %s, from step %d",
        n_ref,
        ref or f"{store_path} (reference split)",
        generator_path,
        explore_prob,
        oats_cfg.selection,
        oats_cfg.synthesis,
        oats_cfg.mix,
        after,
    )
    if lr_at is None:

        def lr_at(step: int) -> float:
            return schedule(step, cfg)

    loss, extras = series_sample_loss, None
    if weight > 0:
        loss = contrastive_sample_loss(weight)

        def extras(model, rows: dict, step: int) -> dict:
            return symbol_targets(model, rows, alpha_at(step, cfg))

    return OatsHook(oats_cfg, generator, reference, loss, make_mask, lr_at, extras)
