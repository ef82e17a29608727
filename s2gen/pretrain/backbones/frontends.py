"""Front ends: how a normalised series (B, L) becomes a sequence of tokens (B, N, d).

Both backbones (``s2`` and ``gpt2``) take their front end from here, chosen by
``PretrainConfig.frontend``, so a front end and a sequence core can be compared
separately. A front end has ``token_points``, the series points one token
covers (L must be a multiple of it), and maps (B, L) -> (B, L / token_points, d).

- ``patch``: non-overlapping patches of ``patch`` points, embedded linearly
  (PatchTST, SymTime).
- ``multiscale``: the embedder of SeisMoLLM (Wang et al. 2025, arXiv 2502.19960):
  parallel 1-D convolutions with different (odd) kernel sizes see the series at
  several temporal resolutions; a common stride compresses it before the
  sequence core. Their GELU features are concatenated, cut into patches of
  ``patch`` feature steps ("latent patching") and each patch is projected to d:
  one "feature token" per ``conv_stride * patch`` points. The paper follows the
  concatenation by a projection and BatchNorm; here the patch projection is the
  only linear map and there is no BatchNorm (batch statistics would make a
  window's tokens depend on its batch, and OATS scores windows one by one).
"""

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.config import PretrainConfig


class PatchEmbedding(nn.Module):
    """Series (B, L) -> patch embeddings (B, L / patch, d); L a multiple of patch."""

    def __init__(self, patch: int, d: int) -> None:
        super().__init__()
        self.patch = self.token_points = patch
        self.proj = nn.Linear(patch, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.unflatten(-1, (-1, self.patch)))  # (B, P, d)


class MultiScaleEmbedding(nn.Module):
    """Series (B, L) -> feature tokens (B, L / (stride * patch), d).

    Parameters
    ----------
    kernels : odd kernel sizes of the parallel convolutions (centred padding
        k // 2, so every branch gives L / stride steps when stride divides L).
    channels : output channels of each convolution.
    stride : common stride of the convolutions (the downsampling).
    patch : feature steps per token (latent patching).
    d : token size.
    """

    def __init__(
        self, kernels: tuple[int, ...], channels: int, stride: int, patch: int, d: int
    ) -> None:
        super().__init__()
        self.stride, self.patch = stride, patch
        self.token_points = stride * patch
        self.convs = nn.ModuleList(
            nn.Conv1d(1, channels, k, stride=stride, padding=k // 2) for k in kernels
        )
        self.proj = nn.Linear(len(kernels) * channels * patch, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.unsqueeze(1)  # (B, 1, L)
        f = torch.cat([conv(u) for conv in self.convs], dim=1)  # (B, F, L / s)
        f = F.gelu(f).transpose(1, 2)  # (B, L / s, F)
        tokens = f.unflatten(1, (-1, self.patch)).flatten(2)  # (B, N, patch * F)
        return self.proj(tokens)  # (B, N, d)


def build_frontend(cfg: PretrainConfig, d: int) -> nn.Module:
    """The front end ``cfg.frontend`` with tokens of size ``d``."""
    if cfg.frontend == "multiscale":
        return MultiScaleEmbedding(
            cfg.conv_kernels, cfg.conv_channels, cfg.conv_stride, cfg.patch, d
        )
    return PatchEmbedding(cfg.patch, d)


def embed_tokens(
    frontend: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, mask_token: torch.Tensor
) -> torch.Tensor:
    """Tokens (B, N, d) of series x (B, L), masked tokens (B, N) replaced by ``mask_token``.

    The points of a masked token are zeroed before the front end: a
    convolution would otherwise carry them into the neighbouring visible
    tokens (0 is the visible mean of a window normalised with its visible points).
    """
    if mask is None:
        return frontend(x)
    x = x.masked_fill(mask.repeat_interleave(frontend.token_points, dim=1), 0.0)
    h = frontend(x)  # (B, N, d)
    return torch.where(mask.unsqueeze(-1), mask_token.to(h.dtype), h)
