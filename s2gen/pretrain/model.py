"""The pretraining model: one series backbone shared by one or more objectives.

``Pretrainer(cfg, vocabulary)`` holds ``series`` (the backbone of
``cfg.backbone``, the part that is exported and evaluated) and ``objectives``
(the heads, momentum copies and queues of each objective of ``cfg.objective``).
``losses(batch, alpha, generator)`` is one training step's forward: every
objective's terms, and their weighted sum as ``loss``. ``forward(series, mask)``
is the per-sample masked-series loss that OATS scores with ``torch.func``.
"""

import torch
from torch import nn

from s2gen.pretrain.backbones import build_backbone
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.objectives import OBJECTIVES, Step

GALLERY = 256  # candidates per validation gallery (chance is 1/256)
_VAL_SEED = 20251008  # fixed mask seed of validation: numbers of two checkpoints compare


class Pretrainer(nn.Module):
    """A backbone and the objectives that train it.

    Parameters
    ----------
    cfg : model sizes, objectives and their settings.
    vocabulary : the pretraining token strings (``s2gen.pretrain.symbols``);
        needed by objectives that read symbols, ignored otherwise.
    """

    def __init__(self, cfg: PretrainConfig, vocabulary: list[str] | None = None) -> None:
        super().__init__()
        if cfg.needs_symbols and not vocabulary:
            raise ValueError(f"objective={cfg.objective!r} reads symbols: give the vocabulary")
        self.cfg = cfg
        self.series = build_backbone(cfg)
        self.objectives = nn.ModuleDict(
            {name: OBJECTIVES[name](cfg, self.series, vocabulary) for name in cfg.objectives}
        )

    def term_weights(self) -> dict[str, float]:
        """Weight of every loss term of every objective (names are unique across objectives)."""
        out: dict[str, float] = {}
        for objective in self.objectives.values():
            out.update(objective.weights())
        return out

    def losses(
        self, batch: dict[str, torch.Tensor], alpha: float, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Loss terms of one training step and their weighted sum ``loss``.

        Parameters
        ----------
        batch : see ``objectives.base.Step`` (raw windows, canonical tokens, ...).
        alpha : momentum-distillation weight at this step.
        generator : CPU generator of the step's masks.
        """
        step = Step(batch, self.series, generator, alpha)
        out: dict[str, torch.Tensor] = {}
        for objective in self.objectives.values():
            out.update(objective.losses(step))
        weights = self.term_weights()
        out["loss"] = sum(weights[k] * out[k] for k in weights if weights[k] > 0)
        return out

    def after_step(self) -> None:
        """Per-step upkeep of the objectives (e.g. the temperature clamp)."""
        for objective in self.objectives.values():
            objective.after_step()

    def forward(self, series: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sample masked-series loss (B,) of raw windows (B, window) and patch masks (B, P)."""
        for objective in self.objectives.values():
            loss = objective.per_sample_series_loss(self.series, series, mask)
            if loss is not None:
                return loss
        raise ValueError(f"objective={self.cfg.objective!r} has no masked-series loss")

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, float]:
        """Held-out metrics, averaged over galleries of ``GALLERY`` samples, in eval mode.

        Returns ``val_<term>`` for every loss term (and metric) of every objective,
        ``val_loss`` (weighted like the training loss) and ``val_gallery``
        (the gallery size; one smaller gallery if the set is smaller).
        """
        was_training = self.training
        self.eval()
        generator = torch.Generator().manual_seed(_VAL_SEED)
        n = batch["series"].shape[0]
        size = min(GALLERY, n)
        totals: dict[str, float] = {}
        galleries = 0
        for start in range(0, n - size + 1, size):
            part = {k: v[start : start + size].to(device) for k, v in batch.items()}
            step = Step(part, self.series, generator)
            for objective in self.objectives.values():
                for key, value in objective.validate(step).items():
                    totals[key] = totals.get(key, 0.0) + value
            galleries += 1
        self.train(was_training)
        out = {f"val_{key}": value / galleries for key, value in totals.items()}
        weights = self.term_weights()
        out["val_loss"] = sum(w * out[f"val_{k}"] for k, w in weights.items() if w > 0)
        out["val_gallery"] = float(size)
        return out
