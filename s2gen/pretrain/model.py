"""The series-symbol pretraining model, in one file.

Two towers trained against each other, SymTime-style (arXiv 2510.08445) with
the ALBEF recipe for the contrastive part (Li et al. 2021, momentum distillation):

- ``PatchEncoder``: a patch transformer over instance-normalised windows
  (non-overlapping patches of 16, a [CLS] token, learned positions, pre-norm
  blocks, a learned mask token for masked series modelling);
- ``SymbolEncoder``: a small transformer over the store's closed token
  vocabulary, [CLS] = ``<bos>``, key-padding mask only;
- ``S2Pretrainer``: both towers, the reconstruction and MLM heads, linear
  projections to a shared space, momentum (EMA) copies of towers and
  projections, feature queues and a learnable temperature.

Fixed on purpose against SymTime's released code (reference/symtime.md, 8):
one softmax on the distillation targets, a key-padding attention mask (never
an inverted visible-visible mask), a ring-buffer queue of any size, the
momentum branch on clean inputs, and padding never in the MTS loss.
"""

import copy
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.losses import (
    contrastive_loss,
    distill_targets,
    draw_patch_mask,
    draw_token_mask,
    key_validity,
    masked_patch_error,
    masked_series_loss_per_sample,
    mlm_loss,
)


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
        # plain softmax attention: sequences are short, and it batches under torch.func.vmap
        scores = q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5  # (B, h, N, N)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        weights = self.drop(scores.softmax(dim=-1))
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


class PatchEncoder(nn.Module):
    """Series tower: patches -> [CLS] + patch tokens (SymTime TS encoder, pre-norm).

    Parameters
    ----------
    patch : points per patch.
    max_patches : most patches a sequence may have (positions are learned).
    """

    def __init__(
        self, patch: int, max_patches: int, d: int, heads: int, d_ff: int, layers: int, dropout
    ) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, max_patches + 1, d) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d, heads, d_ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, patches: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, P, patch) float, mask (B, P) bool (True = masked) -> (B, P + 1, d)."""
        h = self.embed(patches)  # (B, P, d)
        if mask is not None:
            h = torch.where(mask.unsqueeze(-1), self.mask_token.to(h.dtype), h)
        cls = self.cls.expand(h.shape[0], -1, -1)  # (B, 1, d)
        h = torch.cat([cls, h], dim=1)  # (B, P + 1, d)
        h = self.drop(h + self.pos[:, : h.shape[1]])
        for block in self.blocks:
            h = block(h)
        return self.norm(h)


class SymbolEncoder(nn.Module):
    """Symbol tower: expression tokens -> [CLS] + token states, padding masked as keys."""

    def __init__(
        self,
        vocab_size: int,
        max_tokens: int,
        d: int,
        heads: int,
        d_ff: int,
        layers: int,
        dropout: float,
        cls_id: int,
        pad_id: int,
    ) -> None:
        super().__init__()
        self.cls_id, self.pad_id = cls_id, pad_id
        self.tok = nn.Embedding(vocab_size, d)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(1, max_tokens + 1, d) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d, heads, d_ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) int64 without [CLS] -> (B, T + 1, d)."""
        cls = torch.full_like(tokens[:, :1], self.cls_id)
        ids = torch.cat([cls, tokens], dim=1)  # (B, T + 1)
        pad = ids == self.pad_id
        h = self.drop(self.tok(ids) + self.pos[:, : ids.shape[1]])  # (B, T + 1, d)
        for block in self.blocks:
            h = block(h, pad)
        return self.norm(h)


class MLMHead(nn.Module):
    """Dense, GELU, LayerNorm, then the (tied) token embedding as decoder."""

    def __init__(self, d: int, vocab_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """h (B, T, d), embedding (V, d) -> logits (B, T, V)."""
        return F.linear(self.norm(F.gelu(self.dense(h))), embedding, self.bias)


@torch.no_grad()
def momentum_update(online: nn.Module, momentum: nn.Module, m: float) -> None:
    """theta_m <- m * theta_m + (1 - m) * theta over parameters (m = 0 copies, m = 1 keeps)."""
    target = list(momentum.parameters())
    source = list(online.parameters())
    torch._foreach_mul_(target, m)
    torch._foreach_add_(target, source, alpha=1.0 - m)


@torch.no_grad()
def enqueue(queue: torch.Tensor, ptr: int, values: torch.Tensor) -> int:
    """Write ``values`` (n, ...) into the ring buffer ``queue`` (Q, ...) at ``ptr``.

    Same as writing the rows one by one, wrapping around the end (so if
    n > Q only the newest Q rows stay). Returns the new pointer.
    """
    size, n = queue.shape[0], values.shape[0]
    if size == 0 or n == 0:
        return ptr
    kept = min(n, size)  # writing n rows in turn leaves the last `kept` of them
    idx = (ptr + n - kept + torch.arange(kept, device=queue.device)) % size
    queue[idx] = values[n - kept :].to(queue.dtype)
    return (ptr + n) % size


def _all_gather(t: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``t`` over all DDP ranks (``t`` itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class S2Pretrainer(nn.Module):
    """Series and symbol towers with heads, momentum copies, queues and temperature.

    ``forward(series, mask)`` is the per-sample masked-series loss (the entry
    point for ``torch.func.functional_call`` + ``vmap``); ``pretrain_losses``
    computes one training step's losses.

    Parameters
    ----------
    cfg : model sizes and objective settings.
    vocabulary : token strings of the store (index = id); needs ``<pad>``,
        ``<bos>`` (used as [CLS]) and ``<mask>``.
    """

    def __init__(self, cfg: PretrainConfig, vocabulary: list[str]) -> None:
        super().__init__()
        for name in ("<pad>", "<bos>", "<mask>"):
            if name not in vocabulary:
                raise ValueError(f"vocabulary lacks the special token {name!r}")
        self.cfg = cfg
        self.patch = cfg.patch
        self.vocab_size = len(vocabulary)
        self.pad_id = vocabulary.index("<pad>")
        self.mask_id = vocabulary.index("<mask>")
        self.first_regular = 1 + max(vocabulary.index(s) for s in vocabulary if s.startswith("<"))
        d, sd, e = cfg.d_model, cfg.sym_d_model, cfg.embed_dim

        self.series = PatchEncoder(
            cfg.patch, cfg.n_patches, d, cfg.n_heads, cfg.d_ff, cfg.n_layers, cfg.dropout
        )
        self.patch_head = nn.Linear(d, cfg.patch)
        self.series_proj = nn.Linear(d, e)
        self.symbol = SymbolEncoder(
            self.vocab_size,
            cfg.max_tokens,
            sd,
            cfg.sym_heads,
            cfg.sym_d_ff,
            cfg.sym_layers,
            cfg.dropout,
            cls_id=vocabulary.index("<bos>"),
            pad_id=self.pad_id,
        )
        self.mlm_head = MLMHead(sd, self.vocab_size)
        self.symbol_proj = nn.Linear(sd, e)
        # learned in log space (as CLIP's logit scale): Adam's steps then change it by ratios
        self.log_temp = nn.Parameter(torch.tensor(float(cfg.temp_init)).log())

        self.series_m = copy.deepcopy(self.series).requires_grad_(False)
        self.series_proj_m = copy.deepcopy(self.series_proj).requires_grad_(False)
        self.symbol_m = copy.deepcopy(self.symbol).requires_grad_(False)
        self.symbol_proj_m = copy.deepcopy(self.symbol_proj).requires_grad_(False)

        q = cfg.queue_size
        self.register_buffer("queue_series", F.normalize(torch.randn(q, e), dim=1))
        self.register_buffer("queue_symbol", F.normalize(torch.randn(q, e), dim=1))
        self.register_buffer("queue_ids", torch.full((q,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @property
    def temp(self) -> torch.Tensor:
        """The contrastive temperature (a scalar tensor; its log is the parameter)."""
        return self.log_temp.exp()

    @torch.no_grad()
    def clamp_temp(self) -> None:
        """Keep the temperature in [temp_min, temp_max] (called after each optimiser step)."""
        self.log_temp.clamp_(math.log(self.cfg.temp_min), math.log(self.cfg.temp_max))

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, momentum) module pairs updated by EMA."""
        return [
            (self.series, self.series_m),
            (self.series_proj, self.series_proj_m),
            (self.symbol, self.symbol_m),
            (self.symbol_proj, self.symbol_proj_m),
        ]

    def forward(self, series: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sample masked-series loss: series (B, window), mask (B, P) -> (B,)."""
        return masked_series_loss_per_sample(self, series, mask)

    def series_feature(self, hidden: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """L2-normalised projection of the [CLS] state: (B, L, d) -> (B, embed_dim)."""
        proj = self.series_proj_m if momentum else self.series_proj
        return F.normalize(proj(hidden[:, 0]).float(), dim=-1)

    def symbol_feature(self, hidden: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """L2-normalised projection of the [CLS] state: (B, T, sd) -> (B, embed_dim)."""
        proj = self.symbol_proj_m if momentum else self.symbol_proj
        return F.normalize(proj(hidden[:, 0]).float(), dim=-1)

    def pretrain_losses(
        self, batch: dict[str, torch.Tensor], alpha: float, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Losses of one training step (and the momentum update and enqueue it implies).

        Parameters
        ----------
        batch : ``series`` (B, window) float32 normalised, ``tokens`` (B, T) int64,
            ``has_symbol`` (B,) bool, ``expr_id`` (B,) int64. Rows without a
            symbol count in the masked-series loss only (not in MLM, the
            contrastive loss or the queues), whatever their tokens hold.
            Optional ``sample_weight`` (B,) float (default all 1): each row's
            weight in the masked-series loss, a weighted mean (OATS
            ``--oats-mix add`` gives its generated rows ``--oats-weight``).
        alpha : weight of the momentum-distillation targets at this step.
        generator : CPU generator of the patch and token masks.

        Returns
        -------
        dict of scalars: ``loss`` (weighted total), ``mts``, ``mlm``, ``mlm_acc``,
        ``t2s``, ``s2t``.
        """
        cfg = self.cfg
        series, has_symbol, ids = batch["series"], batch["has_symbol"], batch["expr_id"]
        tokens = batch["tokens"].masked_fill(~has_symbol[:, None], self.pad_id)  # no MLM there
        patches, h_series, h_symbol, mts, mlm, mlm_acc = self.masked_passes(
            series, tokens, generator, batch.get("sample_weight")
        )

        if cfg.itc_clean:  # ALBEF: contrast clean inputs (two more online passes)
            t = self.series_feature(self.series(patches))  # (B, e)
            s = self.symbol_feature(self.symbol(tokens))  # (B, e)
        else:  # SymTime: contrast the masked passes
            t = self.series_feature(h_series)
            s = self.symbol_feature(h_symbol)
        with torch.no_grad():
            for online, ema in self.momentum_pairs():
                momentum_update(online, ema, cfg.momentum)
            t_m = self.series_feature(self.series_m(patches), momentum=True)  # (B, e)
            s_m = self.symbol_feature(self.symbol_m(tokens), momentum=True)  # (B, e)
            keys_series = torch.cat([t_m, self.queue_series])  # (B + Q, e)
            keys_symbol = torch.cat([s_m, self.queue_symbol])  # (B + Q, e)
            valid = key_validity(ids, has_symbol, self.queue_ids)  # (B, B + Q)
            temp = self.temp.detach()
            target_t2s = distill_targets(t_m @ keys_symbol.T / temp, valid, alpha)
            target_s2t = distill_targets(s_m @ keys_series.T / temp, valid, alpha)
        weight = has_symbol.float()
        temp = self.temp
        t2s = contrastive_loss(t @ keys_symbol.T / temp, target_t2s, valid, weight)
        s2t = contrastive_loss(s @ keys_series.T / temp, target_s2t, valid, weight)
        self._enqueue(t_m, s_m, ids, has_symbol)

        loss = cfg.w_mts * mts + cfg.w_mlm * mlm + cfg.w_itc * (t2s + s2t) / 2
        return {"loss": loss, "mts": mts, "mlm": mlm, "mlm_acc": mlm_acc, "t2s": t2s, "s2t": s2t}

    def masked_passes(
        self,
        series: torch.Tensor,
        tokens: torch.Tensor,
        generator: torch.Generator,
        sample_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """The masked-series and masked-token passes of one batch, and their losses.

        Parameters
        ----------
        series : (B, window) float32 normalised.
        tokens : (B, T) int64.
        generator : CPU generator; the patch mask is drawn first, then the token mask.
        sample_weight : (B,) float weights of the rows in the masked-series
            loss (a weighted mean); None = the plain mean.

        Returns
        -------
        patches (B, P, patch), the series encoder's states (B, P + 1, d), the
        symbol encoder's states (B, T + 1, sd), and the scalars mts, mlm, mlm_acc.
        """
        cfg = self.cfg
        mask = draw_patch_mask(series.shape[0], cfg.n_patches, cfg.series_mask_ratio, generator)
        mask = mask.to(series.device)  # (B, P)
        inputs, labels = draw_token_mask(
            tokens,
            cfg.token_mask_ratio,
            generator,
            pad_id=self.pad_id,
            mask_id=self.mask_id,
            first_regular=self.first_regular,
            vocab_size=self.vocab_size,
        )
        patches = series.unflatten(-1, (-1, self.patch))  # (B, P, patch)
        h_series = self.series(patches, mask)  # (B, P + 1, d)
        error = masked_patch_error(self.patch_head(h_series[:, 1:]), patches, mask)  # (B,)
        if sample_weight is None:
            mts = error.mean()
        else:
            mts = (error * sample_weight).sum() / sample_weight.sum()
        h_symbol = self.symbol(inputs)  # (B, T + 1, sd)
        mlm, mlm_acc = mlm_loss(self.mlm_head(h_symbol[:, 1:], self.symbol.tok.weight), labels)
        return patches, h_series, h_symbol, mts, mlm, mlm_acc

    @torch.no_grad()
    def _enqueue(self, t_m, s_m, ids, has_symbol) -> None:
        """Queue the momentum features of samples with a symbol, from every rank."""
        keep = _all_gather(has_symbol)
        ptr = int(self.queue_ptr)
        enqueue(self.queue_series, ptr, _all_gather(t_m)[keep])
        enqueue(self.queue_symbol, ptr, _all_gather(s_m)[keep])
        self.queue_ptr.fill_(enqueue(self.queue_ids, ptr, _all_gather(ids)[keep]))
