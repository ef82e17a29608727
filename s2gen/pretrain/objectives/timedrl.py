"""The ``timedrl`` objective: instance-level and timestamp-level terms without augmentation.

TimeDRL (Chang et al., ICDE 2024): the same normalised window passes through
the encoder twice, the two passes differing only by dropout, giving instance
states z1, z2 ([CLS], or the pooled tokens of a backbone without [CLS]:
``backbones.instance_state``) and patch states h1, h2. The instance-contrastive
task is SimSiam's symmetric negative cosine with a predictor p (a two-layer
MLP: linear d -> d/2, batch norm, ReLU, dropout, linear d/2 -> d) and a
stop-gradient sg on the other pass,

    inst = -1/2 [ cos(p(z1), sg(z2)) + cos(p(z2), sg(z1)) ],

and the timestamp-predictive task reconstructs every patch from its own
state with a linear head (after dropout), in both passes,

    rec  = 1/2 [ MSE(head(h1), x) + MSE(head(h2), x) ],

x being the window normalised with all its points (TimeDRL normalises each
instance before patching), cut into patches. TimeDRL's loss is rec + lambda
* inst: ``w_rec`` = 1, ``w_inst`` = lambda. Beside ``s2`` it gives [CLS] a
series-level signal that needs no symbols; its first pass is the clean pass
``s2``'s contrastive term uses anyway (``Step.clean``).
"""

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.backbones import instance_state
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.objectives.base import Objective, Step


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -cos(prediction, target) with the target detached: (B, d) x 2 -> scalar."""
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1).mean()


def instance_contrast(p1, p2, z1, z2) -> torch.Tensor:
    """-1/2 [cos(p1, sg z2) + cos(p2, sg z1)]: predictions p and [CLS] states z, (B, d) each."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


def patch_reconstruction(r1, r2, target) -> torch.Tensor:
    """1/2 [MSE(r1, target) + MSE(r2, target)], means over all values: (B, P, patch) each."""
    return 0.5 * sum((r.float() - target).pow(2).mean() for r in (r1, r2))


class ContrastivePredictor(nn.Module):
    """TimeDRL's predictor: d -> d/2 (batch norm, ReLU, dropout) -> d."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        hidden = max(1, d // 2)
        self.net = nn.Sequential(
            nn.Linear(d, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, d),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, d)
        return self.net(x)


class TimeDRLObjective(Objective):
    """Two dropout views; [CLS] predicts the other view's [CLS]; patches are reconstructed."""

    name = "timedrl"
    needs_symbols = False

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, vocabulary=None) -> None:
        super().__init__()
        self.cfg = cfg
        d = backbone.dim
        self.predictor = ContrastivePredictor(d, cfg.dropout)
        self.recon_head = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(d, backbone.token_points)
        )

    def weights(self) -> dict[str, float]:
        return {"inst": self.cfg.w_inst, "rec": self.cfg.w_rec}

    def _terms(self, step: Step, views: tuple[int, int]) -> dict[str, torch.Tensor]:
        backbone = step.backbone
        h1, h2 = step.clean(views[0]), step.clean(views[1])
        out = {}
        if self.cfg.w_inst > 0:
            z1, z2 = instance_state(backbone, h1), instance_state(backbone, h2)
            out["inst"] = instance_contrast(self.predictor(z1), self.predictor(z2), z1, z2)
        if self.cfg.w_rec > 0:
            target = step.normalised.unflatten(-1, (-1, backbone.token_points))  # (B, P, patch)
            r1, r2 = (self.recon_head(backbone.token_states(h)) for h in (h1, h2))
            out["rec"] = patch_reconstruction(r1, r2, target)
        return out

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        return self._terms(step, (0, 1))

    @torch.no_grad()
    def validate(self, step: Step) -> dict[str, float]:
        """In eval mode the two views coincide: inst is -cos(p(z), z), rec the clean error."""
        return {k: float(v) for k, v in self._terms(step, (0, 0)).items()}
