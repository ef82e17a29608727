"""The OATS batch hook: keep the most helpful samples, add guided series in place of the rest.

``OatsHook(batch, step, model) -> batch`` runs before the pretraining loss:

1. one explore/exploit draw; TSIS of the batch from the cache, with missing,
   stale (and, when exploring, all) samples scored at the current weights
   against the reference gradient (``influence``, ``cache``);
2. keep the top ``keep`` share of the batch by TSIS (samples the SNR gate set
   to -inf rank last);
3. generate one guided series per kept sample with a finite score (cycling
   through them if more are needed) until the batch size is restored: a
   gated sample is never a guide;
4. generated rows have no expression: ``has_symbol`` False, padding tokens,
   ``row``/``expr_id``/``channel`` -1, so they enter the masked-series loss
   only, never the series<->symbol loss;
5. ``batch["metrics"]`` gets the shares of selected and generated rows and
   score statistics.

Notes
-----
Deng et al. (2026), OATS (oats.md sections 1 and 5.2), with the fixes listed in
oats.md section 6: one draw per step, no zero scores for unscored samples, EMA
generator, generated rows excluded from the contrastive loss.
"""

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from s2gen.oats.cache import ScoreCache
from s2gen.oats.config import OatsConfig
from s2gen.oats.influence import (
    SampleLoss,
    per_sample_gradients,
    reference_gradient,
    scored_parameters,
    snr_db,
    snr_gate,
    tsis,
)

log = logging.getLogger(__name__)

NO_ID_FIELDS = ("row", "expr_id", "channel")  # set to -1 on generated rows


def sample_keys(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """Cache keys (B,) int64 of a batch: store row, channel and input/output kind.

    key = (row * 128 + channel) * 2 + has_symbol, so y_j and x_j of one row
    differ; a batch without ``channel`` uses channel 0.
    """
    row = batch["row"].cpu().numpy().astype(np.int64)
    channel = batch["channel"].cpu().numpy() if "channel" in batch else np.zeros_like(row)
    has = batch["has_symbol"].cpu().numpy().astype(np.int64)
    return (row * 128 + channel) * 2 + has


def select_top(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Positions of the ``n_keep`` highest scores, best first (ties: lower position first)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")[:n_keep]


def _rows(batch: dict, where: np.ndarray) -> dict:
    """The per-row tensors of ``batch`` at positions ``where``."""
    b = batch["series"].shape[0]
    index = torch.as_tensor(where, device=batch["series"].device)
    return {
        k: v[index]
        for k, v in batch.items()
        if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == b
    }


class OatsHook:
    """Influence-scored selection and guided generation for one pretraining run.

    Parameters
    ----------
    cfg : scoring, cache and selection settings.
    generator : has ``sample(guides (n, L) np.ndarray, seed=int, guidance_scale=,
        ddim_steps=) -> (n, L)`` (an ``s2gen.oats.generator.Generator``; it is
        moved to the batch's device on first use).
    reference : the reference set, ``series`` (R, L) and ``mask`` (R, P)
        tensors, plus whatever per-row fields ``extras`` reads.
    sample_loss : per-sample loss (``s2gen.oats.influence``), taking a sample
        dict with ``series`` (L,), ``mask`` (P,) and the fields of ``extras``.
    make_mask : sample keys (m,) -> fixed masks (m, P) bool, the same mask for
        the same key every time, so re-scores are comparable.
    lr_at : learning rate at a step (TSIS is lr * similarity).
    normalize : applied to generated series (n, L) before they enter the batch
        (the pretraining instance normalisation); None keeps them as sampled.
    extras : ``extras(model, rows) -> dict`` of further per-sample tensors for
        ``sample_loss``, computed from batch rows at the current weights without
        gradient (e.g. momentum symbol keys); None adds nothing.
    """

    def __init__(
        self,
        cfg: OatsConfig,
        generator,
        reference: dict[str, torch.Tensor],
        sample_loss: SampleLoss,
        make_mask: Callable[[np.ndarray], torch.Tensor],
        lr_at: Callable[[int], float],
        normalize: Callable[[np.ndarray], np.ndarray] | None = None,
        extras: Callable[[nn.Module, dict], dict] | None = None,
    ) -> None:
        if len(reference["series"]) == 0:
            raise ValueError("the reference set is empty; give --oats-ref or a larger store")
        self.cfg = cfg
        self.generator = generator
        self.reference = reference
        self.sample_loss = sample_loss
        self.make_mask = make_mask
        self.lr_at = lr_at
        self.normalize = normalize
        self.extras = extras
        self.cache = ScoreCache(cfg.explore_prob, cfg.max_age, cfg.seed)
        self._rng = np.random.default_rng(cfg.seed + 1)  # the random-selection ablation only
        self._names: list[str] | None = None
        self._ref_grad: tuple[int, torch.Tensor] | None = None

    def state_dict(self) -> dict:
        """The score cache and the random state: saved in checkpoints, so a resume is exact."""
        return {"cache": self.cache.state_dict(), "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
        self.cache.load_state_dict(state["cache"])
        self._rng.bit_generator.state = state["rng"]

    def _samples(self, model: nn.Module, rows: dict, mask: torch.Tensor) -> dict:
        """The per-sample inputs of ``sample_loss`` for batch ``rows``."""
        sample = {"series": rows["series"], "mask": mask}
        if self.extras is not None:
            with torch.no_grad():
                sample.update(self.extras(model, rows))
        return sample

    def _reference_grad(self, model: nn.Module, step: int) -> torch.Tensor:
        if self._ref_grad is None or self._ref_grad[0] != step:
            device = next(model.parameters()).device
            ref = {k: v.to(device) for k, v in self.reference.items()}
            sample = self._samples(model, ref, ref["mask"])
            grad = reference_gradient(model, self.sample_loss, sample, self._names)
            self._ref_grad = (step, grad)
        return self._ref_grad[1]

    def score(self, model: nn.Module, rows: dict, keys: np.ndarray, step: int) -> np.ndarray:
        """Gated TSIS (m,) of batch ``rows`` (``series`` (m, L), ...) with sample ``keys`` (m,)."""
        if self._names is None:
            self._names = scored_parameters(model, self.cfg.param_prefixes)
        series = rows["series"]
        was_training = model.training
        model.eval()
        try:
            sample = self._samples(model, rows, self.make_mask(keys).to(series.device))
            grads = per_sample_gradients(model, self.sample_loss, sample, self._names)
            ref = self._reference_grad(model, step)
            scores = tsis(grads, ref, self.lr_at(step), self.cfg.similarity)
        finally:
            model.train(was_training)
        snr = snr_db(series.detach().cpu().double().numpy(), self.cfg.snr_window)
        return snr_gate(scores, snr, self.cfg.snr_threshold_db)

    def __call__(self, batch: dict, step: int, model: nn.Module) -> dict:
        if step < self.cfg.after:
            return batch
        series = batch["series"]
        b = series.shape[0]
        keys = sample_keys(batch)
        if self.cfg.selection == "random":
            explore, scored = False, np.zeros(b, dtype=bool)
            scores = self._rng.permutation(b).astype(np.float64)
        else:
            explore = self.cache.draw()
            scores, scored = self.cache.scores(
                keys, step, explore, lambda w: self.score(model, _rows(batch, w), keys[w], step)
            )
        kept = select_top(scores, max(1, int(round(self.cfg.keep * b))))
        finite = scores[np.isfinite(scores)]
        guides = kept[np.isfinite(scores[kept])]
        metrics = {
            "oats_explore": float(explore),
            "oats_scored_share": float(scored.mean()),
            "oats_gated_share": float(1.0 - len(finite) / b),
            "oats_selected_share": 1.0,
            "oats_generated_share": 0.0,
        }
        if len(finite) and self.cfg.selection == "tsis":
            metrics.update(
                oats_score_mean=float(finite.mean()),
                oats_score_median=float(np.median(finite)),
                oats_score_min=float(finite.min()),
                oats_score_max=float(finite.max()),
                oats_score_threshold=float(scores[guides].min()),  # lowest kept finite score
            )
        if len(guides) == 0:  # every sample gated: train on the batch as it is
            log.info("step %d: every sample failed the SNR gate; batch left unchanged", step)
            return {**batch, "metrics": {**batch.get("metrics", {}), **metrics}}
        guide_pos = guides[np.arange(b - len(kept)) % len(guides)]  # one per guide, cycling
        out = self._merge(batch, kept, guide_pos, step)
        metrics["oats_selected_share"] = len(kept) / b
        metrics["oats_generated_share"] = len(guide_pos) / b
        out["metrics"] = {**batch.get("metrics", {}), **metrics}
        return out

    def _merge(self, batch: dict, kept: np.ndarray, guide_pos: np.ndarray, step: int) -> dict:
        """Kept rows followed by one generated row per entry of ``guide_pos``."""
        series = batch["series"]
        b = series.shape[0]
        kept_t = torch.as_tensor(kept, device=series.device)
        guide_t = torch.as_tensor(guide_pos, device=series.device)
        if len(guide_pos):
            if getattr(self.generator, "device", series.device) != series.device:
                self.generator.to(series.device)  # generate where the model trains
            guides = series[guide_t].detach().cpu().double().numpy()  # (n, L)
            new = self.generator.sample(
                guides,
                guidance_scale=self.cfg.guidance_scale,
                ddim_steps=self.cfg.ddim_steps,
                seed=self.cfg.seed * 1_000_003 + step,
            )
            if self.normalize is not None:
                new = self.normalize(new)
            new_t = torch.as_tensor(np.asarray(new), dtype=series.dtype, device=series.device)
        out = {}
        for name, value in batch.items():
            if not (isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == b):
                out[name] = value
                continue
            if not len(guide_pos):
                out[name] = value[kept_t]
            elif name == "series":
                out[name] = torch.cat([value[kept_t], new_t])
            elif name == "tokens":
                out[name] = torch.cat([value[kept_t], torch.zeros_like(value[guide_t])])
            elif name == "has_symbol":
                out[name] = torch.cat([value[kept_t], torch.zeros_like(value[guide_t])])
            elif name in NO_ID_FIELDS:
                out[name] = torch.cat([value[kept_t], torch.full_like(value[guide_t], -1)])
            else:  # other per-row fields follow the guide
                out[name] = torch.cat([value[kept_t], value[guide_t]])
        return out
