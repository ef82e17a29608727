"""The ``mae`` objective: masked patch modelling with RoBERTa's corruption, as TiMERT pretrains.

TiMERT pretrains a transformer with a masked-autoencoder pretext task "like
RoBERTa's": 15% of the inputs (its ``mask_percent``, the BERT/RoBERTa
share) are chosen and reconstructed, with a new choice at every step
(RoBERTa's dynamic masking). Here the inputs are patches of the project's
patch transformer. Of the chosen patches

- 80% are shown as the backbone's mask token,
- 10% are replaced by a random other patch of the batch,
- 10% are left as they are,

and the loss is the MSE over all chosen patches (``mae_ratio``: the share
chosen, at least one and at most P - 1 per window).

No statistic of a chosen patch reaches the encoder: each window is normalised
with the points of its unchosen patches (``scaling.instance_norm``; the
backbone's level and scale input too), the targets are the chosen patches in
that space, as ``s2``'s masked-series term does. A replacement patch comes
from the normalised batch (another window's patch in that window's units).
"""

import torch
from torch import nn

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.losses import draw_patch_mask, masked_patch_error
from s2gen.pretrain.objectives.base import Objective, Step
from s2gen.pretrain.objectives.s2 import masked_series_error, patch_visibility
from s2gen.pretrain.scaling import instance_norm, level_scale

MASK_SHARE = 0.8  # chosen patches shown as the mask token
SWAP_SHARE = 0.1  # chosen patches replaced by another patch of the batch (the rest stay)


def draw_corruption(batch: int, n_patches: int, ratio: float, generator: torch.Generator):
    """The random part of one step's corruption, drawn on the CPU.

    Returns
    -------
    chosen : (batch, n_patches) bool, ``n_masked(P, ratio)`` per row.
    action : (batch, n_patches) float in [0, 1): < 0.8 mask token, < 0.9 swap, else keep.
    source : (batch, n_patches) int64, for each patch a uniformly drawn other
        patch of the batch (an index into the batch * n_patches patches, never its own).
    """
    chosen = draw_patch_mask(batch, n_patches, ratio, generator)
    action = torch.rand(batch, n_patches, generator=generator)
    total = batch * n_patches
    draw = torch.randint(0, total - 1, (batch, n_patches), generator=generator)
    own = torch.arange(total).view(batch, n_patches)
    return chosen, action, draw + (draw >= own).long()


def corrupt_patches(
    patches: torch.Tensor, chosen: torch.Tensor, action: torch.Tensor, source: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoBERTa's corruption of the chosen patches.

    Parameters
    ----------
    patches : (B, P, patch) float, the normalised windows cut into patches.
    chosen, action, source : as ``draw_corruption`` returns them.

    Returns
    -------
    inputs : (B, P, patch), the swapped patches replaced by their source patch.
    hidden : (B, P) bool, the patches the backbone shows as its mask token.
    """
    hidden = chosen & (action < MASK_SHARE)
    swapped = chosen & (action >= MASK_SHARE) & (action < MASK_SHARE + SWAP_SHARE)
    others = patches.flatten(0, 1)[source]  # (B, P, patch)
    return torch.where(swapped.unsqueeze(-1), others, patches), hidden


def mae_error(
    backbone: nn.Module,
    head: nn.Module,
    series: torch.Tensor,
    chosen: torch.Tensor,
    action: torch.Tensor,
    source: torch.Tensor,
) -> torch.Tensor:
    """Per-sample MSE (B,) over the chosen patches of raw windows (B, window)."""
    patch = backbone.token_points
    visible = patch_visibility(chosen, patch)
    z = instance_norm(series, visible)  # (B, window), unchosen points: mean 0, variance 1
    target = z.unflatten(-1, (-1, patch))  # (B, P, patch)
    inputs, hidden = corrupt_patches(target, chosen, action, source)
    states = backbone(inputs.flatten(1), hidden, level_scale(series, visible))
    recon = head(backbone.token_states(states))  # (B, P, patch)
    return masked_patch_error(recon, target, chosen)


class MAEObjective(Objective):
    """Reconstruct RoBERTa-corrupted patches from their states (a linear head)."""

    name = "mae"
    needs_symbols = False

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, vocabulary=None) -> None:
        super().__init__()
        self.cfg = cfg
        self.head = nn.Linear(backbone.dim, backbone.token_points)

    def weights(self) -> dict[str, float]:
        return {"mae": self.cfg.w_mae}

    def per_sample_series_loss(self, backbone, series, mask):
        """OATS's score: every patch of ``mask`` shown as the mask token (no random draw)."""
        return masked_series_error(backbone, self.head, series, mask)

    def _error(self, step: Step) -> torch.Tensor:
        series = step.batch["series"]
        n_patches = series.shape[1] // step.backbone.token_points
        drawn = draw_corruption(series.shape[0], n_patches, self.cfg.mae_ratio, step.generator)
        chosen, action, source = (t.to(series.device) for t in drawn)
        return mae_error(step.backbone, self.head, series, chosen, action, source)

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        if self.cfg.w_mae <= 0:
            return {}
        w = step.sample_weight
        return {"mae": (self._error(step) * w).sum() / w.sum().clamp_min(1e-12)}

    @torch.no_grad()
    def validate(self, step: Step) -> dict[str, float]:
        return {"mae": float(self._error(step).mean())}
