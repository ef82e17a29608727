"""The ``crops`` objective: crop-consistency of [CLS] across views of one window.

Two views of each window are contrasted: the clean window (the pass
``Step.clean(0)`` that the ``s2`` contrast also uses) and a random sub-span of
it (``crop_view_min`` to all of the window, uniform) linearly resampled to the
window, the view evaluation produces when it resizes a series. Their [CLS]
states go through a two-layer projection g, and the NT-Xent loss of SimCLR
(Chen et al. 2020) pulls the two views of a window together against the
other 2B - 2 views of the batch:

    crop = mean_i -log exp(s(i, i') / tau) / sum_{k != i} exp(s(i, k) / tau),

s the cosine of the projections, i' the other view of i, tau = ``crop_temp``
(0.1). Mantis (Feofanov et al. 2025) pretrains its classification encoder
with this kind of crop-resize contrast; TS2Vec's contextual consistency is
the per-timestep relative. Unlike ``timedrl``'s dropout views, the two views
differ in content and scale, so the task cannot be solved by copying.
"""

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.objectives.base import Objective, Step
from s2gen.pretrain.scaling import instance_norm, level_scale


def crop_views(series: torch.Tensor, low: float, generator: torch.Generator) -> torch.Tensor:
    """A random sub-span of each row of series (B, L), linearly resampled to L points.

    The span is U(low, 1) of the row, placed uniformly; point i of the view is
    the row at start + i (span - 1) / (L - 1), as ``scaling.resize_linear`` and
    ``data.resample_spans`` place them. Returns (B, L) float32.
    """
    b, length = series.shape
    share = low + (1.0 - low) * torch.rand(b, generator=generator)  # (B,)
    span = share * (length - 1)  # in steps between the first and last point
    start = torch.rand(b, generator=generator) * (length - 1 - span)  # (B,)
    grid = torch.linspace(0.0, 1.0, length)
    pos = (start[:, None] + grid[None, :] * span[:, None]).to(series.device)  # (B, L)
    left = pos.floor().long().clamp(0, length - 1)
    right = (left + 1).clamp(max=length - 1)
    frac = (pos - left).float()
    x = series.float()
    return x.gather(1, left) * (1 - frac) + x.gather(1, right) * frac


def nt_xent(a: torch.Tensor, b: torch.Tensor, temp: float) -> torch.Tensor:
    """SimCLR's NT-Xent of paired rows: a, b (B, e) projections -> scalar (float32).

    Each of the 2B views has its partner as the positive and the other 2B - 2
    views as negatives; the mean over the 2B views.
    """
    z = F.normalize(torch.cat([a, b]).float(), dim=-1)  # (2B, e)
    n = a.shape[0]
    with torch.autocast(z.device.type, enabled=False):
        logits = z @ z.T / temp  # (2B, 2B)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner)


class CropObjective(Objective):
    """The clean window and a resampled sub-span of it, contrasted on projected [CLS] states."""

    name = "crops"
    needs_symbols = False

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, vocabulary=None) -> None:
        super().__init__()
        self.cfg = cfg
        d = backbone.dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, cfg.embed_dim))

    def weights(self) -> dict[str, float]:
        return {"crop": self.cfg.w_crop}

    def _loss(self, step: Step) -> torch.Tensor:
        view = crop_views(step.batch["series"], self.cfg.crop_view_min, step.generator)
        h_view = step.backbone(instance_norm(view), stats=level_scale(view))  # (B, 1 + P, d)
        a = self.projection(step.clean(0)[:, 0])
        b = self.projection(h_view[:, 0])
        return nt_xent(a, b, self.cfg.crop_temp)

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        return {"crop": self._loss(step)} if self.cfg.w_crop > 0 else {}

    @torch.no_grad()
    def validate(self, step: Step) -> dict[str, float]:
        return {"crop": float(self._loss(step))}
