"""The OATS batch hook: keep the most helpful samples, add guided series made from them.

``OatsHook(batch, step, model) -> batch`` runs before the pretraining loss:

1. one explore/exploit draw; gradient alignments of the batch from the cache,
   with missing, stale (and, when exploring, all) windows scored at the
   current weights against the reference gradient (``influence``, ``cache``);
   TSIS = learning rate of this step x alignment;
2. the SNR gate (``snr``) sets TSIS = -inf for the noisiest windows;
3. the top ``keep`` share by TSIS is kept; each kept window that passed the
   gate guides exactly one generated series (``synthesis``: guided by it,
   OATS; or, as ablations, unguided in its scale, or jitter + mixup of the
   kept windows);
4. ``mix`` "replace" (OATS): the generated rows take the places of the
   lowest-ranked real rows (batch size unchanged; with fewer guides, more real
   rows stay); "add": the whole real batch stays and the generated rows are
   appended with ``sample_weight`` = ``generated_weight``;
5. generated rows have no expression: ``has_symbol`` False, padding tokens,
   ``row``/``expr_id``/``channel``/``offset``/``span`` -1, so they enter the
   masked-series loss only, never MLM or the series<->symbol loss;
6. ``batch["metrics"]`` gets the shares of real and generated rows and score
   statistics.

Notes
-----
Deng et al. (2026), OATS (oats.md sections 1 and 5.2), with the fixes listed in
oats.md section 6: one draw per step, no zero scores for unscored samples, EMA
generator, generated rows excluded from the contrastive loss, scores cached per
window (not per series) and without the learning rate.
"""

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from s2gen.oats.cache import ScoreCache
from s2gen.oats.config import OatsConfig
from s2gen.oats.generator import unzscore, zscore
from s2gen.oats.influence import (
    SampleLoss,
    alignment,
    per_sample_gradients,
    reference_gradient,
    scored_parameters,
)
from s2gen.oats.snr import snr_db, snr_gate
from s2gen.pretrain.augmentation import augment_batch

log = logging.getLogger(__name__)

NO_ID_FIELDS = ("row", "expr_id", "channel", "offset", "span")  # -1 on generated rows


def sample_keys(batch: dict[str, torch.Tensor]) -> np.ndarray:
    """Cache keys (B,) int64 of a batch's windows: a 63-bit hash of where each window comes from.

    The fields hashed are the store row, the channel, input or output, and the
    window's first point and span, so y_j and x_j of one row differ, and so do
    two windows of one series; a batch without ``channel``, ``offset`` or
    ``span`` uses 0 for it. Two distinct windows share a key with probability
    about 2^-63 (a shared key only means a cached score is reused).
    """
    row = batch["row"].cpu().numpy().astype(np.int64)
    fields = [row] + [
        batch[name].cpu().numpy().astype(np.int64) if name in batch else np.zeros_like(row)
        for name in ("channel", "has_symbol", "offset", "span")
    ]
    h = np.zeros(row.shape, np.uint64)
    with np.errstate(over="ignore"):
        for value in fields:  # splitmix64's finaliser over each field in turn
            h = (h ^ value.astype(np.uint64)) + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(1)).astype(np.int64)


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
    cfg : scoring, cache, gate, selection and mixing settings.
    generator : has ``sample(guides (n, L) np.ndarray or None, n=, seed=int,
        guidance_scale=, ddim_steps=) -> (n, L)`` (an
        ``s2gen.oats.generator.Generator``; it is moved to the batch's device
        on first use); None with ``cfg.synthesis`` "augment".
    reference : the reference set, ``series`` (R, L) and ``mask`` (R, P)
        tensors, plus whatever per-row fields ``extras`` reads.
    sample_loss : per-sample loss (``s2gen.oats.influence``), taking a sample
        dict with ``series`` (L,), ``mask`` (P,) and the fields of ``extras``.
    make_mask : window keys (m,) -> fixed masks (m, P) bool, the same mask for
        the same key every time, so re-scores are comparable.
    lr_at : learning rate at a step (TSIS is lr * alignment).
    (Generated series keep their guide's scale: batches hold raw windows and the
    model normalises every window itself.)
    extras : ``extras(model, rows, step) -> dict`` of further per-sample
        tensors for ``sample_loss``, computed from batch rows at the current
        weights without gradient (e.g. momentum symbol keys and distillation
        targets); None adds nothing.
    """

    def __init__(
        self,
        cfg: OatsConfig,
        generator,
        reference: dict[str, torch.Tensor],
        sample_loss: SampleLoss,
        make_mask: Callable[[np.ndarray], torch.Tensor],
        lr_at: Callable[[int], float],
        extras: Callable[[nn.Module, dict, int], dict] | None = None,
    ) -> None:
        if len(reference["series"]) == 0:
            raise ValueError("the reference set is empty; give --oats-ref or a larger store")
        if generator is None and cfg.synthesis != "augment":
            raise ValueError(f"synthesis {cfg.synthesis!r} needs a generator (--oats GEN.pt)")
        self.cfg = cfg
        self.generator = generator
        self.reference = reference
        self.sample_loss = sample_loss
        self.make_mask = make_mask
        self.lr_at = lr_at
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

    def _samples(self, model: nn.Module, rows: dict, mask: torch.Tensor, step: int) -> dict:
        """The per-sample inputs of ``sample_loss`` for batch ``rows``."""
        sample = {"series": rows["series"], "mask": mask}
        if self.extras is not None:
            with torch.no_grad():
                sample.update(self.extras(model, rows, step))
        return sample

    def _reference_grad(self, model: nn.Module, step: int) -> torch.Tensor:
        if self._ref_grad is None or self._ref_grad[0] != step:
            device = next(model.parameters()).device
            ref = {k: v.to(device) for k, v in self.reference.items()}
            sample = self._samples(model, ref, ref["mask"], step)
            grad = reference_gradient(model, self.sample_loss, sample, self._names)
            self._ref_grad = (step, grad)
        return self._ref_grad[1]

    def score(self, model: nn.Module, rows: dict, keys: np.ndarray, step: int) -> np.ndarray:
        """Alignments (m,) of batch ``rows`` (``series`` (m, L), ...) with window ``keys`` (m,).

        The raw gradient alignment with the reference set at the current
        weights (what the cache keeps); TSIS is ``lr_at(step)`` times it.
        """
        if self._names is None:
            self._names = scored_parameters(model, self.cfg.param_prefixes)
        was_training = model.training
        model.eval()
        try:
            mask = self.make_mask(keys).to(rows["series"].device)
            sample = self._samples(model, rows, mask, step)
            grads = per_sample_gradients(model, self.sample_loss, sample, self._names)
            return alignment(grads, self._reference_grad(model, step), self.cfg.similarity)
        finally:
            model.train(was_training)

    def gated(self, series: torch.Tensor) -> np.ndarray:
        """(B,) bool: which windows ``series`` (B, L) of a batch the SNR gate removes."""
        cfg = self.cfg
        if cfg.snr_threshold_db == -np.inf and cfg.snr_quantile == 0:
            return np.zeros(series.shape[0], dtype=bool)
        snr = snr_db(series.detach().cpu().double().numpy())
        return snr_gate(snr, cfg.snr_threshold_db, cfg.snr_quantile)

    def __call__(self, batch: dict, step: int, model: nn.Module) -> dict:
        if step < self.cfg.after:
            return batch
        b = batch["series"].shape[0]
        keys = sample_keys(batch)
        if self.cfg.selection == "random":
            explore, scored, gated = False, np.zeros(b, dtype=bool), np.zeros(b, dtype=bool)
            scores = self._rng.permutation(b).astype(np.float64)
        else:
            explore = self.cache.draw()
            aligned, scored = self.cache.scores(
                keys, step, explore, lambda w: self.score(model, _rows(batch, w), keys[w], step)
            )
            gated = self.gated(batch["series"])
            scores = np.where(gated, -np.inf, self.lr_at(step) * aligned)
        order = select_top(scores, b)  # best first, gated last
        n_keep = max(1, int(round(self.cfg.keep * b)))
        guides = order[:n_keep][~gated[order[:n_keep]]]  # one generated row per guide
        metrics = {
            "oats_explore": float(explore),
            "oats_scored_share": float(scored.mean()),
            "oats_gated_share": float(gated.mean()),
        }
        finite = scores[~gated]
        if len(finite) and self.cfg.selection == "tsis":
            metrics.update(
                oats_score_mean=float(finite.mean()),
                oats_score_median=float(np.median(finite)),
                oats_score_min=float(finite.min()),
                oats_score_max=float(finite.max()),
            )
            if len(guides):
                metrics["oats_score_threshold"] = float(scores[guides].min())  # lowest guide
        if self.cfg.mix == "add":
            real = np.arange(b)  # the real batch stays whole, in its order
        else:
            real = np.sort(order[: b - len(guides)])  # generated rows replace the lowest-ranked
            if len(guides) < n_keep:
                log.info(
                    "step %d: %d of %d kept rows failed the SNR gate; generating %d rows, "
                    "the real rows they would have replaced stay",
                    step,
                    n_keep - len(guides),
                    n_keep,
                    len(guides),
                )
        out = self._merge(batch, real, guides, step)
        metrics["oats_selected_share"] = len(real) / b
        metrics["oats_generated_share"] = len(guides) / b
        out["metrics"] = {**batch.get("metrics", {}), **metrics}
        return out

    def _generate(self, series: torch.Tensor, guides: np.ndarray, step: int) -> torch.Tensor:
        """One new series per guide (n, L) on the batch's device and dtype, by ``cfg.synthesis``."""
        index = torch.as_tensor(guides, device=series.device)
        prompts = series[index].detach().cpu().double().numpy()  # (n, L)
        seed = self.cfg.seed * 1_000_003 + step
        if self.cfg.synthesis == "augment":
            new = augment_batch(prompts, np.random.default_rng(seed))
        else:
            if getattr(self.generator, "device", series.device) != series.device:
                self.generator.to(series.device)  # generate where the model trains
            settings = dict(
                guidance_scale=self.cfg.guidance_scale, ddim_steps=self.cfg.ddim_steps, seed=seed
            )
            if self.cfg.synthesis == "guided":
                new = self.generator.sample(prompts, **settings)
            else:  # unguided shapes in the kept rows' scales
                _, loc, scale = zscore(prompts)
                new = unzscore(self.generator.sample(None, n=len(prompts), **settings), loc, scale)
        return torch.as_tensor(np.asarray(new), dtype=series.dtype, device=series.device)

    def _merge(self, batch: dict, real: np.ndarray, guides: np.ndarray, step: int) -> dict:
        """Real rows at positions ``real``, then one generated row per guide position."""
        series = batch["series"]
        b = series.shape[0]
        per_row = [
            k for k, v in batch.items() if isinstance(v, torch.Tensor) and v.ndim and len(v) == b
        ]
        if self.cfg.mix == "add" and "sample_weight" not in batch:
            batch = {**batch, "sample_weight": torch.ones(b, device=series.device)}
            per_row.append("sample_weight")
        real_t = torch.as_tensor(real, device=series.device)
        guide_t = torch.as_tensor(guides, device=series.device)
        out = {k: batch[k][real_t] if k in per_row else v for k, v in batch.items()}
        if len(guides) == 0:
            return out
        new = self._generate(series, guides, step)
        for name in per_row:
            like = batch[name][guide_t]
            if name == "series":
                value = new
            elif name == "sample_weight":  # unweighted in "replace", as OATS
                value = torch.full_like(
                    like, self.cfg.generated_weight if self.cfg.mix == "add" else 1.0
                )
            elif name in ("tokens", "has_symbol"):  # no expression: padding, no symbol
                value = torch.zeros_like(like)
            elif name in NO_ID_FIELDS:
                value = torch.full_like(like, -1)
            else:  # other per-row fields follow the guide
                value = like
            out[name] = torch.cat([out[name], value])
        return out
