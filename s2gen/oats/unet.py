"""The denoiser: a small 1-D U-Net with a TimeDP-style prototype prompt conditioner.

Notes
-----
U-Net after Ho et al. (2020) in 1-D: GroupNorm ResBlocks whose features are
scaled and shifted (FiLM) by the time + condition embedding, two down/up
levels (L -> L/2 -> L/4) and one self-attention at L/4 (oats.md section 5.2).

Prompt conditioner after TimeDP (Huang et al., AAAI 2025, "domain prompts"):
a guiding series is mapped by strided convolutions and pooling to K logits;
ReLU makes them a sparse non-negative weighting over K learned prototypes, and
the weighted sum of prototypes is the condition. The K-dimensional bottleneck
keeps the model from copying its prompt. Condition dropout replaces the
condition by a learned null vector, which enables classifier-free guidance
(Ho & Salimans, 2022): eps = eps_null + w * (eps_cond - eps_null).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from s2gen.oats.config import GeneratorConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)  # (B, 2 * half)
    return F.pad(emb, (0, dim - 2 * half))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, FiLM of the embedding in between, residual path."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, L)
        scale, shift = self.film(F.silu(emb))[:, :, None].chunk(2, dim=1)  # (B, c_out, 1) each
        h = self.norm2(h) * (1.0 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over positions with a residual connection."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)  # (B, L, C)
        out, _ = self.attn(h, h, h, need_weights=False)
        return x + out.transpose(1, 2)  # (B, C, L)


class PromptConditioner(nn.Module):
    """Guiding series (B, L) -> sparse non-negative weights (B, K) and condition (B, D)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        c = cfg.prompt_channels
        self.encoder = nn.Sequential(
            nn.Conv1d(1, c, 4, stride=2, padding=1),
            nn.GroupNorm(8, c),
            nn.SiLU(),
            nn.Conv1d(c, c, 4, stride=2, padding=1),
            nn.GroupNorm(8, c),
            nn.SiLU(),
        )
        self.logits = nn.Linear(2 * c, cfg.prototypes)
        self.prototypes = nn.Parameter(torch.randn(cfg.prototypes, cfg.prototype_dim) * 0.5)

    def forward(self, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(prompt[:, None, :])  # (B, c, L/4)
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # (B, 2c)
        weights = F.relu(self.logits(pooled))  # (B, K), sparse and non-negative
        return weights, weights @ self.prototypes  # (B, K), (B, D)


class UNet1D(nn.Module):
    """Noise predictor eps(x_t, t, condition) on (B, 1, L) with L divisible by 4."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        c0, c1, c2 = cfg.channels
        e = cfg.embed_dim
        self.embed_dim = e
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.cond_proj = nn.Linear(cfg.prototype_dim, e)
        self.inp = nn.Conv1d(1, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, e)
        self.pool0 = nn.Conv1d(c0, c0, 4, stride=2, padding=1)
        self.down1 = ResBlock(c0, c1, e)
        self.pool1 = nn.Conv1d(c1, c1, 4, stride=2, padding=1)
        self.mid1 = ResBlock(c1, c2, e)
        self.attn = SelfAttention(c2, cfg.attention_heads)
        self.mid2 = ResBlock(c2, c2, e)
        self.up1 = ResBlock(c2 + c1, c1, e)
        self.up0 = ResBlock(c1 + c0, c0, e)
        self.out_norm = nn.GroupNorm(8, c0)
        self.out = nn.Conv1d(c0, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.embed_dim)) + self.cond_proj(cond)  # (B, e)
        h0 = self.down0(self.inp(x), emb)  # (B, c0, L)
        h1 = self.down1(self.pool0(h0), emb)  # (B, c1, L/2)
        h = self.mid1(self.pool1(h1), emb)  # (B, c2, L/4)
        h = self.mid2(self.attn(h), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, c2, L/2)
        h = self.up1(torch.cat([h, h1], dim=1), emb)  # (B, c1, L/2)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, c1, L)
        h = self.up0(torch.cat([h, h0], dim=1), emb)  # (B, c0, L)
        return self.out(F.silu(self.out_norm(h)))  # (B, 1, L)


class GuidedDenoiser(nn.Module):
    """U-Net + prompt conditioner + learned null condition (for dropout and guidance)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.conditioner = PromptConditioner(cfg)
        self.unet = UNet1D(cfg)
        self.null = nn.Parameter(torch.zeros(cfg.prototype_dim))

    def condition(self, prompt: torch.Tensor) -> torch.Tensor:
        """Condition vectors (n, D) of guiding series (n, L) (z-scored)."""
        return self.conditioner(prompt)[1]

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor, drop: torch.Tensor
    ) -> torch.Tensor:
        """Training prediction: x (B, 1, L), t (B,), prompt (B, L), drop (B,) bool -> (B, 1, L)."""
        cond = self.condition(prompt)
        cond = torch.where(drop[:, None], self.null.expand_as(cond), cond)  # (B, D)
        return self.unet(x, t, cond)

    def guided(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, scale: float
    ) -> torch.Tensor:
        """Sampling prediction with classifier-free guidance; ``cond`` None = unguided."""
        null = self.null.expand(x.shape[0], -1)
        if cond is None:
            return self.unet(x, t, null)
        eps_cond = self.unet(x, t, cond)
        if scale == 1.0:
            return eps_cond
        eps_null = self.unet(x, t, null)
        return eps_null + scale * (eps_cond - eps_null)
