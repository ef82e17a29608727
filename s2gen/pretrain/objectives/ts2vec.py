"""The ``ts2vec`` objective: hierarchical contrast of two overlapping crops (TS2Vec).

TS2Vec (Yue et al., AAAI 2022, section 3): two overlapping segments
[a1, b1) and [a2, b2) with a1 <= a2 < b1 <= b2 are cut from each normalised
window, each passes through the per-timestep encoder with its own random
timestamp mask (a timestamp's latent vector is zeroed with probability
``ts2vec_mask_prob``, TS2Vec 0.5), and the states r (first view) and r' (second)
of the overlap [a2, b1) must agree. The overlap length is uniform in
[2, window], a2 uniform where it fits, a1 uniform in [0, a2], b2 uniform in
[b1, window]; the lengths are shared by the batch and each window shifts
the pair of segments by its own uniform offset (as TS2Vec's released code).

At one scale, with dot products as similarities (no temperature), the
instance-wise term of series i at timestamp t is

    l_inst(i, t) = -log exp(r_it . r'_it) / sum_j [exp(r_it . r'_jt) + 1(i != j) exp(r_it . r_jt)]

(the other series of the batch at t are the negatives) and the temporal term

    l_temp(i, t) = -log exp(r_it . r'_it) / sum_s [exp(r_it . r'_is) + 1(t != s) exp(r_it . r_is)]

(the other timestamps of the same series are the negatives); both are taken
with each view as the anchor and averaged over anchors, series and
timestamps. The hierarchical loss adds alpha * inst + (1 - alpha) * temp at
the overlap's length, max-pools both views by 2 along time (dropping an odd
last step) and repeats down to length 1, where only the instance term is
defined, and divides the sum by the number of scales (alpha =
``ts2vec_alpha``, TS2Vec 0.5).
"""

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.objectives.base import Objective, Step


def _wide(z: torch.Tensor) -> torch.Tensor:
    """z in float32 at least (similarities and softmaxes never run in half precision)."""
    return z.to(torch.promote_types(z.dtype, torch.float32))


def _positive_log_prob(sim: torch.Tensor, half: int) -> torch.Tensor:
    """Mean log-probability of the positives over the anchors of a (..., 2n, 2n) similarity.

    Anchor k < n has positive n + k and anchor n + k has positive k; an
    anchor is never its own candidate.
    """
    size = sim.shape[-1]
    eye = torch.eye(size, dtype=torch.bool, device=sim.device)
    logp = sim.masked_fill(eye, float("-inf")).log_softmax(dim=-1)
    k = torch.arange(half, device=sim.device)
    return torch.cat([logp[..., k, half + k], logp[..., half + k, k]], dim=-1).mean()


def instance_contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec's instance-wise term of two views (B, T, C): other series at t are negatives."""
    z = _wide(torch.cat([z1, z2], dim=0).transpose(0, 1))  # (T, 2B, C)
    return -_positive_log_prob(z @ z.transpose(1, 2), z1.shape[0])  # sims (T, 2B, 2B)


def temporal_contrast(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """TS2Vec's temporal term of two views (B, T, C): other timestamps of a series are negatives."""
    z = _wide(torch.cat([z1, z2], dim=1))  # (B, 2T, C)
    return -_positive_log_prob(z @ z.transpose(1, 2), z1.shape[1])  # sims (B, 2T, 2T)


def hierarchical_contrast(
    z1: torch.Tensor, z2: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The hierarchical contrastive loss of two aligned views (B, T, C), T >= 1.

    Returns the loss and the (instance, temporal) terms of every scale, the
    first at length T; the temporal term of the length-1 scale is 0.
    """
    scales = []
    while True:
        inst = instance_contrast(z1, z2)
        temp = temporal_contrast(z1, z2) if z1.shape[1] > 1 else inst.new_zeros(())
        scales.append((inst, temp))
        if z1.shape[1] == 1:
            break
        z1, z2 = (F.max_pool1d(z.transpose(1, 2), 2).transpose(1, 2) for z in (z1, z2))
    total = sum(alpha * inst + (1 - alpha) * temp for inst, temp in scales) / len(scales)
    return total, scales


def draw_crops(
    length: int, batch: int, generator: torch.Generator
) -> tuple[int, int, int, int, torch.Tensor]:
    """Two overlapping segments of a window of ``length`` points, and per-row shifts.

    Returns a1, b1, a2, b2 (ints, 0 <= a1 <= a2 < b1 <= b2 <= length, overlap
    b1 - a2 >= 2) and ``offset`` (batch,) int64 on the CPU: row i takes
    [offset_i + a1, offset_i + b1) and [offset_i + a2, offset_i + b2), inside the window.
    """

    def uniform(low: int, high: int, size=()) -> torch.Tensor:  # integers in [low, high]
        return torch.randint(low, high + 1, size, generator=generator)

    overlap = int(uniform(2, length))
    a2 = int(uniform(0, length - overlap))
    b1 = a2 + overlap
    a1, b2 = int(uniform(0, a2)), int(uniform(b1, length))
    return a1, b1, a2, b2, uniform(-a1, length - b2, (batch,))


def crop_rows(x: torch.Tensor, start: torch.Tensor, size: int) -> torch.Tensor:
    """Row i of x (B, L) from ``start[i]`` for ``size`` points: (B, size)."""
    index = start[:, None] + torch.arange(size, device=x.device)  # (B, size)
    return torch.gather(x, 1, index)


def two_views(z: torch.Tensor, generator: torch.Generator, mask_prob: float):
    """TS2Vec's two views of windows z (B, L): overlapping crops and their timestamp masks.

    Returns ``views`` ((B, b1 - a1) and (B, b2 - a2) float), ``masks`` (bool of
    the same shapes, True = masked, on z's device) and ``(s1, s2, n)``: the
    overlap is ``views[0][:, s1 : s1 + n]`` = ``views[1][:, s2 : s2 + n]``.
    """
    batch, length = z.shape
    a1, b1, a2, b2, offset = draw_crops(length, batch, generator)
    offset = offset.to(z.device)
    views, masks = [], []
    for start, stop in ((a1, b1), (a2, b2)):
        views.append(crop_rows(z, offset + start, stop - start))
        masks.append(
            (torch.rand(batch, stop - start, generator=generator) < mask_prob).to(z.device)
        )
    return views, masks, (a2 - a1, 0, b1 - a2)


class TS2VecObjective(Objective):
    """Hierarchical contrastive loss of two masked, overlapping crops of every window."""

    name = "ts2vec"
    needs_symbols = False

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, vocabulary=None) -> None:
        super().__init__()
        self.cfg = cfg

    def weights(self) -> dict[str, float]:
        return {"ts2vec": self.cfg.w_ts2vec}

    def _terms(self, step: Step) -> dict[str, torch.Tensor]:
        views, masks, (s1, s2, n) = two_views(
            step.normalised, step.generator, self.cfg.ts2vec_mask_prob
        )
        r1, r2 = (step.backbone(view, mask) for view, mask in zip(views, masks, strict=True))
        loss, scales = hierarchical_contrast(
            r1[:, s1 : s1 + n], r2[:, s2 : s2 + n], self.cfg.ts2vec_alpha
        )
        count = len(scales)
        return {
            "ts2vec": loss,
            "ts2vec_inst": sum(i.detach() for i, _ in scales) / count,
            "ts2vec_temp": sum(t.detach() for _, t in scales) / count,
        }

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        return self._terms(step) if self.cfg.w_ts2vec > 0 else {}

    @torch.no_grad()
    def validate(self, step: Step) -> dict[str, float]:
        return {k: float(v) for k, v in self._terms(step).items()}
