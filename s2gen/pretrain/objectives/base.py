"""What every objective sees: one ``Step`` per batch, and the ``Objective`` interface.

An objective is an ``nn.Module`` holding its own heads (and momentum copies,
queues, ...). Per batch it receives a ``Step`` and returns its loss terms,
unweighted, by name; the model multiplies each term by its weight
(``Objective.weights``) and sums. The backbone is shared by all objectives of
a run and is reached through ``step.backbone``; an objective never stores it
(it would register the backbone's parameters twice).

``Step.clean(k)`` is the backbone's k-th pass over the clean (unmasked,
fully visible) normalised batch, computed once and shared: the contrastive
term of ``s2`` and the first view of ``timedrl`` are the same pass, and with
dropout > 0 the passes k = 0, 1 differ.
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from s2gen.pretrain.scaling import instance_norm, level_scale


@dataclass
class Step:
    """One batch on its way through the objectives.

    Attributes
    ----------
    batch : ``series`` (B, window) float32 raw windows, ``tokens`` (B, T) int64
        canonical symbol tokens, ``has_symbol`` (B,) bool, ``expr_id`` (B,) int64
        skeleton ids, optionally ``sample_weight`` (B,) float (masked-series
        weight of each row, default 1).
    backbone : the shared series encoder.
    generator : CPU generator of every mask of this step (objectives draw in
        their registry order, so a step is reproducible).
    alpha : momentum-distillation weight at this step.
    """

    batch: dict[str, torch.Tensor]
    backbone: nn.Module
    generator: torch.Generator
    alpha: float = 0.0
    _clean: dict[int, torch.Tensor] = field(default_factory=dict)
    _normalised: torch.Tensor | None = None
    _stats: torch.Tensor | None = None

    @property
    def normalised(self) -> torch.Tensor:
        """The batch's windows normalised with all their points, (B, window)."""
        if self._normalised is None:
            self._normalised = instance_norm(self.batch["series"])
        return self._normalised

    @property
    def stats(self) -> torch.Tensor:
        """Level and scale (B, 2) of the windows (``scaling.level_scale``)."""
        if self._stats is None:
            self._stats = level_scale(self.batch["series"])
        return self._stats

    def clean(self, view: int = 0) -> torch.Tensor:
        """Hidden states of the backbone's ``view``-th pass over the clean windows."""
        if view not in self._clean:
            self._clean[view] = self.backbone(self.normalised, stats=self.stats)
        return self._clean[view]

    @property
    def sample_weight(self) -> torch.Tensor:
        """(B,) float weight of each row in the series-reconstruction losses."""
        weight = self.batch.get("sample_weight")
        if weight is None:
            return torch.ones(self.batch["series"].shape[0], device=self.batch["series"].device)
        return weight.float()


class Objective(nn.Module):
    """Interface of a pretraining objective (see the module notes).

    Attributes
    ----------
    name : registry name.
    needs_symbols : True when the objective trains on expressions (S2 stores only).
    """

    name = ""
    needs_symbols = False

    def weights(self) -> dict[str, float]:
        """Weight of each loss term (terms of weight 0 are not computed)."""
        raise NotImplementedError

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        """Unweighted loss terms (scalars) by name, plus any scalar metrics to log."""
        raise NotImplementedError

    def validate(self, step: Step) -> dict[str, float]:
        """Held-out values of the loss terms (keys as ``weights``) and metrics, under no_grad."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step (e.g. to clamp a temperature)."""

    def per_sample_series_loss(
        self, backbone: nn.Module, series: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor | None:
        """Per-sample masked-series loss (B,) for OATS scoring; None if the objective has none."""
        return None
