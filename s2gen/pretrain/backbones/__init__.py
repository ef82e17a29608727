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
module plus one row of ``BACKBONES``. ``instance_state`` is the one
instance-level state objectives train ([CLS], or the pooled tokens without one).

Backbones: ``s2`` (``patch_transformer``, bidirectional, with [CLS]),
``gpt2`` (``gpt2``: a frozen GPT-2 with LoRA adapters, causal, no [CLS]) — both
take their front end from ``frontends`` — and ``dilated-cnn`` (``dilated_cnn``:
TS2Vec's per-timestep encoder, no [CLS]).
"""

from collections.abc import Callable

import torch
from torch import nn

from s2gen.pretrain.backbones.dilated_cnn import build_dilated_cnn
from s2gen.pretrain.backbones.gpt2 import build_gpt2
from s2gen.pretrain.backbones.patch_transformer import build_patch_transformer
from s2gen.pretrain.config import BACKBONE_NAMES, PretrainConfig

BACKBONES: dict[str, Callable[[PretrainConfig], nn.Module]] = {
    "s2": build_patch_transformer,
    "dilated-cnn": build_dilated_cnn,
    "gpt2": build_gpt2,
}
assert tuple(BACKBONES) == BACKBONE_NAMES, "config.BACKBONE_NAMES must list BACKBONES"


def build_backbone(cfg: PretrainConfig) -> nn.Module:
    """The backbone ``cfg.backbone`` with the sizes of ``cfg``."""
    return BACKBONES[cfg.backbone](cfg)


def instance_state(backbone: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The instance-level state (B, dim) of ``backbone``'s output (B, has_cls + N, dim).

    [CLS] when the backbone has one, else the backbone's own pooling (gpt2: the
    token mean or the last token, ``llm_pool``), so objectives train the state
    that ``pool`` exports.
    """
    return hidden[:, 0] if backbone.has_cls else backbone.pool(hidden)
