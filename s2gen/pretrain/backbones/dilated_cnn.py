"""The ``dilated-cnn`` backbone: TS2Vec's encoder (Yue et al., AAAI 2022, section 3.1).

Every timestamp's value is projected to ``cnn_hidden`` channels (TS2Vec: 64);
masked timestamps (``mask``, True = hidden) have their latent vector set to
zero, which is TS2Vec's timestamp masking; ``cnn_depth`` residual blocks
(TS2Vec: 10) follow, block i holding two "same"-padded convolutions of
kernel 3 dilated by 2^i, each after a GELU, then one more such block maps to
``d_model`` channels (TS2Vec: 320) with a 1x1 projection on its skip path.
The states are per timestep (``token_points`` = 1, no [CLS]) and the
instance embedding is their maximum over time (TS2Vec's max pooling over the
whole series). The window's level and scale (``stats``) are not used:
TS2Vec sees the normalised series only.
"""

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.config import PretrainConfig

KERNEL = 3  # TS2Vec's kernel size


class DilatedBlock(nn.Module):
    """x + conv2(GELU(conv1(GELU(x)))), both convolutions dilated by ``dilation``.

    ``project`` puts a 1x1 convolution on the skip path (always when the width changes).
    """

    def __init__(self, c_in: int, c_out: int, dilation: int, project: bool) -> None:
        super().__init__()
        pad = dilation * (KERNEL - 1) // 2  # odd receptive field: the length is kept
        self.conv1 = nn.Conv1d(c_in, c_out, KERNEL, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, KERNEL, padding=pad, dilation=dilation)
        self.skip = nn.Conv1d(c_in, c_out, 1) if project or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, L) -> (B, c_out, L)
        residual = x if self.skip is None else self.skip(x)
        return residual + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class DilatedCNN(nn.Module):
    """Series (B, L) -> per-timestep states (B, L, d_model), any L >= 1.

    Parameters
    ----------
    hidden : width of the input projection and of the first ``depth`` blocks.
    depth : residual blocks at ``hidden`` channels (block i dilated by 2^i).
    out : width of the last block (dilated by 2^depth): ``dim`` and ``embed_dim``.
    dropout : dropout on the output states (TS2Vec: 0.1).
    """

    has_cls = False
    token_points = 1

    def __init__(self, hidden: int, depth: int, out: int, dropout: float) -> None:
        super().__init__()
        self.dim = self.embed_dim = out
        self.input_proj = nn.Linear(1, hidden)
        widths = [hidden] * depth + [out]
        self.blocks = nn.Sequential(
            *(
                DilatedBlock(hidden, width, 2**i, project=i == depth)
                for i, width in enumerate(widths)
            )
        )
        self.drop = nn.Dropout(dropout)

    def n_tokens(self, length: int) -> int:
        """One state per timestep."""
        return length

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, stats: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L) float, mask (B, L) bool (True = masked timestep), stats unused -> (B, L, d)."""
        h = self.input_proj(x.unsqueeze(-1))  # (B, L, hidden)
        if mask is not None:
            h = h.masked_fill(mask.unsqueeze(-1), 0.0)
        h = self.blocks(h.transpose(1, 2))  # (B, d, L)
        return self.drop(h.transpose(1, 2))  # (B, L, d)

    def token_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """The per-timestep states themselves (B, L, d)."""
        return hidden

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """Instance embedding (B, d): the maximum of each channel over time."""
        return hidden.max(dim=1).values


def build_dilated_cnn(cfg: PretrainConfig) -> DilatedCNN:
    """The ``dilated-cnn`` backbone of a config (output width ``d_model``)."""
    return DilatedCNN(cfg.cnn_hidden, cfg.cnn_depth, cfg.d_model, cfg.dropout)
