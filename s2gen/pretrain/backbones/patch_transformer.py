"""The ``s2`` backbone: a patch transformer with a [CLS] token (SymTime's series tower, pre-norm).

The front end (``frontends``: linear patches, or the multi-scale convolutional
embedder) turns the series into tokens, masked tokens are replaced by a
learned mask token, [CLS] is prepended (plus a
linear map of the window's level and scale, with ``scale_token``), learned
positions are added and pre-norm blocks follow. Its instance embedding is
[CLS] concatenated with the mean of the patch states, 2 * d_model values:
[CLS] alone carries only what the instance-level objectives put into it,
the patch mean what masked modelling puts into the patches.
"""

import torch
from torch import nn

from s2gen.pretrain.backbones.frontends import build_frontend, embed_tokens
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.layers import Block


class PatchTransformer(nn.Module):
    """Series (B, L) -> [CLS] + token states (B, 1 + L / token_points, d).

    Parameters
    ----------
    frontend : series (B, L) -> tokens (B, L / frontend.token_points, d).
    max_patches : most tokens a sequence may have (positions are learned).
    d, heads, d_ff, layers, dropout : the transformer.
    """

    has_cls = True

    def __init__(
        self,
        frontend: nn.Module,
        max_patches: int,
        d: int,
        heads: int,
        d_ff: int,
        layers: int,
        dropout: float,
        scale_token: bool = True,
    ) -> None:
        super().__init__()
        self.token_points, self.dim, self.max_tokens = frontend.token_points, d, max_patches
        self.embed_dim = 2 * d
        self.frontend = frontend
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.stats_proj = nn.Linear(2, d) if scale_token else None
        self.mask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, max_patches + 1, d) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d, heads, d_ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def n_tokens(self, length: int) -> int:
        """Tokens of a series of ``length`` points (a multiple of ``token_points``)."""
        return length // self.token_points

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, stats: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L) float, mask (B, P) bool (True = masked), stats (B, 2) -> (B, P + 1, d)."""
        h = embed_tokens(self.frontend, x, mask, self.mask_token)  # (B, P, d)
        if h.shape[1] > self.max_tokens:
            raise ValueError(
                f"{h.shape[1]} patches exceed the encoder's {self.max_tokens}; "
                "resize the series to the window"
            )
        cls = self.cls.expand(h.shape[0], -1, -1).to(h.dtype)  # (B, 1, d)
        if self.stats_proj is not None and stats is not None:
            cls = cls + self.stats_proj(stats).unsqueeze(1).to(h.dtype)
        h = torch.cat([cls, h], dim=1)  # (B, P + 1, d)
        h = self.drop(h + self.pos[:, : h.shape[1]])
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def token_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """Patch states (B, P, d) of ``forward``'s output."""
        return hidden[:, 1:]

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """Instance embedding (B, 2d): [CLS] state, then the mean of the patch states."""
        return torch.cat([hidden[:, 0], hidden[:, 1:].mean(dim=1)], dim=-1)


def build_patch_transformer(cfg: PretrainConfig) -> PatchTransformer:
    """The ``s2`` backbone of a config (its positions cover ``cfg.window``)."""
    return PatchTransformer(
        build_frontend(cfg, cfg.d_model),
        cfg.n_patches,
        cfg.d_model,
        cfg.n_heads,
        cfg.d_ff,
        cfg.n_layers,
        cfg.dropout,
        cfg.scale_token,
    )
