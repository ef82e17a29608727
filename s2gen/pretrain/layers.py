"""Transformer building blocks shared by the series and the symbol towers.

Pre-norm blocks (x + Attn(LN(x)), then x + MLP(LN(x))) with a key-padding
mask; plain softmax attention (sequences are short, and it batches under
``torch.func.vmap`` for OATS's per-sample gradients). The scores and their
softmax run in float32 under autocast.
"""

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention; ``pad`` (B, N) True marks keys nobody may attend to."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.drop = nn.Dropout(dropout)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        B, N, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, N, d)
        q, k, v = (t.view(B, N, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = (q.float() @ k.float().transpose(-2, -1)) * (d // self.heads) ** -0.5  # (B,h,N,N)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        weights = self.drop(scores.softmax(dim=-1)).to(v.dtype)
        y = weights @ v  # (B, h, N, dh)
        return self.out(y.transpose(1, 2).reshape(B, N, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads, dropout)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), pad))
        return x + self.drop(self.mlp(self.norm2(x)))
