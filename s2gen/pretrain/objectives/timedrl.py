"""The ``timedrl`` objective: instance-level and timestamp-level terms without augmentation.

TimeDRL (Chang et al., ICDE 2024): the same window passes through the encoder
twice; the two passes differ only by dropout. With [CLS] states z1, z2 (the
token mean for a backbone without [CLS], ``backbones.instance_state``) and a
two-layer predictor p,

    inst = -1/2 [ cos(p(z1), sg(z2)) + cos(p(z2), sg(z1)) ]      (sg = stop-gradient)

and a linear head reconstructs every patch from its own state in each pass,

    rec  = 1/2 [ MSE(head(h1), x) + MSE(head(h2), x) ]

on the window normalised with all its points. Used beside ``s2`` it gives
[CLS] a series-level signal that needs no symbols; its first pass is the
clean pass ``s2``'s contrastive term uses anyway (``Step.clean``).
"""

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.backbones import instance_state
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.layers import Predictor
from s2gen.pretrain.objectives.base import Objective, Step


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -cos(prediction, target) with the target detached: (B, d) x 2 -> scalar."""
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1).mean()


class TimeDRLObjective(Objective):
    """Two dropout views; [CLS] predicts the other view's [CLS]; patches are reconstructed."""

    name = "timedrl"
    needs_symbols = False

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, vocabulary=None) -> None:
        super().__init__()
        self.cfg = cfg
        d = backbone.dim
        self.predictor = Predictor(d, d, d)
        self.recon_head = nn.Linear(d, backbone.token_points)

    def weights(self) -> dict[str, float]:
        return {"inst": self.cfg.w_inst, "rec": self.cfg.w_rec}

    def _terms(self, step: Step, views: tuple[int, int]) -> dict[str, torch.Tensor]:
        backbone = step.backbone
        h1, h2 = step.clean(views[0]), step.clean(views[1])
        out = {}
        if self.cfg.w_inst > 0:
            z1, z2 = instance_state(backbone, h1), instance_state(backbone, h2)
            out["inst"] = 0.5 * (
                negative_cosine(self.predictor(z1), z2) + negative_cosine(self.predictor(z2), z1)
            )
        if self.cfg.w_rec > 0:
            target = step.normalised.unflatten(-1, (-1, backbone.token_points))  # (B, P, patch)
            rec = [
                (self.recon_head(backbone.token_states(h)).float() - target).pow(2).mean()
                for h in (h1, h2)
            ]
            out["rec"] = 0.5 * (rec[0] + rec[1])
        return out

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        return self._terms(step, (0, 1))

    @torch.no_grad()
    def validate(self, step: Step) -> dict[str, float]:
        """In eval mode the two views coincide: inst is -cos(p(z), z), rec the clean error."""
        return {k: float(v) for k, v in self._terms(step, (0, 0)).items()}
