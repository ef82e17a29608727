"""Series encoders ("backbones") behind one interface, registered by name.

A backbone maps a batch of instance-normalised series to hidden states::

    hidden = backbone(x, mask, stats)  # x (B, L) float32, mask (B, N) bool or None,
                                       # stats (B, 2) or None: scaling.level_scale of x
    hidden.shape == (B, backbone.has_cls + N, backbone.dim)

where N = ``backbone.n_tokens(L)`` tokens of ``backbone.token_points`` points
each (the patch length; 1 for a per-timestep encoder), ``mask`` marks
tokens to hide (masked modelling) and ``stats`` is what the normalisation
removed (a backbone may ignore it). ``backbone.pool(hidden)`` is the
instance embedding, (B, ``backbone.embed_dim``); ``backbone.token_states(hidden)``
the per-token states (B, N, dim). Objectives (``s2gen.pretrain.objectives``)
and the exported ``SeriesEncoder`` use nothing else, so a backbone is one
module plus one row of ``BACKBONES``.
"""

from collections.abc import Callable

from torch import nn

from s2gen.pretrain.backbones.dilated_cnn import build_dilated_cnn
from s2gen.pretrain.backbones.patch_transformer import build_patch_transformer
from s2gen.pretrain.config import BACKBONE_NAMES, PretrainConfig

BACKBONES: dict[str, Callable[[PretrainConfig], nn.Module]] = {
    "s2": build_patch_transformer,
    "dilated-cnn": build_dilated_cnn,
}
assert tuple(BACKBONES) == BACKBONE_NAMES, "config.BACKBONE_NAMES must list BACKBONES"


def build_backbone(cfg: PretrainConfig) -> nn.Module:
    """The backbone ``cfg.backbone`` with the sizes of ``cfg``."""
    return BACKBONES[cfg.backbone](cfg)
