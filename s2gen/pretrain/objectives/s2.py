"""The ``s2`` objective: masked series, masked symbols and series<->symbol contrast.

SymTime (arXiv 2510.08445) with the ALBEF recipe for the contrastive part
(Li et al. 2021, momentum distillation), fixed against SymTime's released code
(reference/symtime.md, section 8): one softmax on the distillation targets, a
key-padding attention mask, a ring-buffer queue of any size, the momentum
branch on clean inputs, padding never in the masked-series loss. Also:

- the masked-series loss normalises each window with its *visible* points
  only and predicts the masked patches in that space (no leaked mean);
- symbols are canonical tokens (``s2gen.pretrain.symbols``: a constant is its
  sign and decade), and windows whose expressions share a skeleton are never
  each other's negatives;
- similarities and softmaxes run in float32 under autocast.

Terms: ``mts`` (masked patches, MSE in the visible-normalised space), ``mlm``
(BERT masking of symbol tokens), ``itc`` = (``t2s`` + ``s2t``) / 2.
"""

import copy
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain.backbones import instance_state
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.layers import Block
from s2gen.pretrain.losses import (
    contrastive_loss,
    distill_targets,
    draw_patch_mask,
    draw_token_mask,
    key_validity,
    masked_patch_error,
    mlm_loss,
)
from s2gen.pretrain.objectives.base import Objective, Step
from s2gen.pretrain.scaling import instance_norm, level_scale
from s2gen.symbols.vocabulary import SPECIALS


class SymbolEncoder(nn.Module):
    """Symbol tower: canonical tokens -> [CLS] + token states, padding masked as keys."""

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
    """theta_m <- m * theta_m + (1 - m) * theta over parameters (m = 0 copies, m = 1 keeps).

    Parameters the online model does not train (a frozen base, which a copy may
    share) are left alone: their average is themselves.
    """
    pairs = zip(momentum.parameters(), online.parameters(), strict=True)
    pairs = [(t, s) for t, s in pairs if s.requires_grad]
    target, source = [t for t, _ in pairs], [s for _, s in pairs]
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


def patch_visibility(mask: torch.Tensor, patch: int) -> torch.Tensor:
    """Point-level visibility (B, P * patch) of a patch mask (B, P) (True = masked)."""
    return ~mask.repeat_interleave(patch, dim=1)


def masked_series_error(
    backbone: nn.Module, head: nn.Module, series: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Per-sample masked-series loss (B,): MSE over the masked patches only.

    The window is normalised with its visible points (``instance_norm``; the
    backbone also gets their level and scale), the backbone sees the mask token
    at the masked patches, ``head`` maps patch states to ``patch`` points, and
    the target is the normalised window. Pure in
    the parameters and without data-dependent control flow, so it works under
    ``torch.func.functional_call`` + ``vmap`` (OATS's per-sample gradients).

    series : (B, window) raw windows; mask : (B, P) bool, True = masked.
    Returns (B,) float, 0 for a row without masked patches.
    """
    patch = backbone.token_points
    visible = patch_visibility(mask, patch)
    z = instance_norm(series, visible)  # (B, window)
    hidden = backbone(z, mask, level_scale(series, visible))  # (B, 1 + P, d)
    recon = head(backbone.token_states(hidden))  # (B, P, patch)
    return masked_patch_error(recon, z.unflatten(-1, (-1, patch)), mask)


class S2Objective(Objective):
    """Masked series + masked symbols + momentum-distilled series<->symbol contrast.

    Parameters
    ----------
    cfg : sizes, ratios, weights and contrastive settings.
    backbone : the shared series encoder (copied once for its momentum twin).
    vocabulary : pretraining token strings (index = id); needs ``<pad>``,
        ``<bos>`` (used as [CLS]) and ``<mask>``.
    """

    name = "s2"
    needs_symbols = True

    def __init__(self, cfg: PretrainConfig, backbone: nn.Module, vocabulary: list[str]) -> None:
        super().__init__()
        for token in ("<pad>", "<bos>", "<mask>"):
            if token not in vocabulary:
                raise ValueError(f"vocabulary lacks the special token {token!r}")
        if cfg.max_tokens < 1:
            raise ValueError(
                "max_tokens=0 (sized from the store) is not resolved yet: pass the config through "
                "s2gen.pretrain.data.resolve_max_tokens, or set max_tokens"
            )
        self.cfg = cfg
        self.vocab_size = len(vocabulary)
        self.pad_id = vocabulary.index("<pad>")
        self.mask_id = vocabulary.index("<mask>")
        # random MLM replacements are drawn from first_regular on: never a special token
        self.first_regular = 1 + max(vocabulary.index(s) for s in SPECIALS if s in vocabulary)
        d, sd, e = backbone.dim, cfg.sym_d_model, cfg.embed_dim
        self.patch_head = nn.Linear(d, backbone.token_points)
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

        self.series_m = copy.deepcopy(backbone).requires_grad_(False)
        self.series_proj_m = copy.deepcopy(self.series_proj).requires_grad_(False)
        self.symbol_m = copy.deepcopy(self.symbol).requires_grad_(False)
        self.symbol_proj_m = copy.deepcopy(self.symbol_proj).requires_grad_(False)

        q = cfg.queue_size
        self.register_buffer("queue_series", F.normalize(torch.randn(q, e), dim=1))
        self.register_buffer("queue_symbol", F.normalize(torch.randn(q, e), dim=1))
        self.register_buffer("queue_ids", torch.full((q,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def weights(self) -> dict[str, float]:
        return {"mts": self.cfg.w_mts, "mlm": self.cfg.w_mlm, "itc": self.cfg.w_itc}

    @property
    def temp(self) -> torch.Tensor:
        """The contrastive temperature (a scalar tensor; its log is the parameter)."""
        return self.log_temp.exp()

    def after_step(self) -> None:
        """Keep the temperature in [temp_min, temp_max]."""
        with torch.no_grad():
            self.log_temp.clamp_(math.log(self.cfg.temp_min), math.log(self.cfg.temp_max))

    def series_feature(self, hidden: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """L2-normalised float32 projection of the instance state: (B, L, d) -> (B, embed_dim).

        The instance state is [CLS], or the pooled tokens of a backbone without one
        (``backbones.instance_state``; the momentum copy has the online layout).
        """
        proj = self.series_proj_m if momentum else self.series_proj
        return F.normalize(proj(instance_state(self.series_m, hidden)).float(), dim=-1)

    def symbol_feature(self, hidden: torch.Tensor, momentum: bool = False) -> torch.Tensor:
        """L2-normalised float32 projection of the [CLS] state: (B, T, sd) -> (B, embed_dim)."""
        proj = self.symbol_proj_m if momentum else self.symbol_proj
        return F.normalize(proj(hidden[:, 0]).float(), dim=-1)

    def per_sample_series_loss(self, backbone, series, mask):
        return masked_series_error(backbone, self.patch_head, series, mask)

    def draw_masks(self, step: Step, tokens: torch.Tensor):
        """Patch mask (B, P) and the MLM inputs/labels (B, T) of a step, in that order."""
        cfg, series = self.cfg, step.batch["series"]
        n_patches = series.shape[1] // step.backbone.token_points
        mask = draw_patch_mask(series.shape[0], n_patches, cfg.series_mask_ratio, step.generator)
        inputs, labels = draw_token_mask(
            tokens,
            cfg.token_mask_ratio,
            step.generator,
            pad_id=self.pad_id,
            mask_id=self.mask_id,
            first_regular=self.first_regular,
            vocab_size=self.vocab_size,
        )
        return mask.to(series.device), inputs, labels

    def masked_terms(self, step: Step, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mts`` (weighted by ``step.sample_weight``), ``mlm`` and ``mlm_acc`` of a step."""
        mask, inputs, labels = self.draw_masks(step, tokens)
        out = {}
        if self.cfg.w_mts > 0:
            err = masked_series_error(step.backbone, self.patch_head, step.batch["series"], mask)
            w = step.sample_weight
            out["mts"] = (err * w).sum() / w.sum().clamp_min(1e-12)
        if self.cfg.w_mlm > 0:
            h_symbol = self.symbol(inputs)  # (B, T + 1, sd)
            logits = self.mlm_head(h_symbol[:, 1:], self.symbol.tok.weight)
            out["mlm"], out["mlm_acc"] = mlm_loss(logits, labels)
        return out

    def losses(self, step: Step) -> dict[str, torch.Tensor]:
        batch = step.batch
        has_symbol, ids = batch["has_symbol"], batch["expr_id"]
        tokens = batch["tokens"].masked_fill(~has_symbol[:, None], self.pad_id)  # no MLM there
        out = self.masked_terms(step, tokens)
        if self.cfg.w_itc > 0:
            out.update(self._contrast(step, tokens, has_symbol, ids))
        return out

    def _contrast(self, step: Step, tokens, has_symbol, ids) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        device_type = tokens.device.type
        z = step.normalised
        with torch.no_grad():
            momentum_update(step.backbone, self.series_m, cfg.momentum)
            for online, ema in (
                (self.series_proj, self.series_proj_m),
                (self.symbol, self.symbol_m),
                (self.symbol_proj, self.symbol_proj_m),
            ):
                momentum_update(online, ema, cfg.momentum)
            t_m = self.series_feature(self.series_m(z, stats=step.stats), momentum=True)  # (B, e)
            s_m = self.symbol_feature(self.symbol_m(tokens), momentum=True)  # (B, e)
        t = self.series_feature(step.clean(0))  # (B, e)
        s = self.symbol_feature(self.symbol(tokens))  # (B, e)
        with torch.autocast(device_type, enabled=False):  # similarities in float32
            with torch.no_grad():
                keys_series = torch.cat([t_m, self.queue_series])  # (B + Q, e)
                keys_symbol = torch.cat([s_m, self.queue_symbol])  # (B + Q, e)
                valid = key_validity(ids, has_symbol, self.queue_ids)  # (B, B + Q)
                temp = self.temp.detach()
                target_t2s = distill_targets(t_m @ keys_symbol.T / temp, valid, step.alpha)
                target_s2t = distill_targets(s_m @ keys_series.T / temp, valid, step.alpha)
            weight = has_symbol.float()
            temp = self.temp.float()
            t2s = contrastive_loss(t @ keys_symbol.T / temp, target_t2s, valid, weight)
            s2t = contrastive_loss(s @ keys_series.T / temp, target_s2t, valid, weight)
        self._enqueue(t_m, s_m, ids, has_symbol)
        return {"itc": (t2s + s2t) / 2, "t2s": t2s, "s2t": s2t, "temp": self.temp.detach()}

    @torch.no_grad()
    def _enqueue(self, t_m, s_m, ids, has_symbol) -> None:
        """Queue the momentum features of samples with a symbol, from every rank."""
        keep = _all_gather(has_symbol)
        ptr = int(self.queue_ptr)
        enqueue(self.queue_series, ptr, _all_gather(t_m)[keep])
        enqueue(self.queue_symbol, ptr, _all_gather(s_m)[keep])
        self.queue_ptr.fill_(enqueue(self.queue_ids, ptr, _all_gather(ids)[keep]))

    @torch.no_grad()
    def validate(self, step: Step) -> dict[str, float]:
        """Masked-modelling losses, MLM accuracy and in-gallery retrieval on a held-out gallery.

        Retrieval follows ALBEF/SymTime practice: encoders in eval mode on clean
        inputs, the gallery is the step's batch (chance 1/B), a hit when the
        retrieved item has the query's skeleton. ``itc`` is the in-gallery
        InfoNCE with hard targets, both ways.
        """
        batch = step.batch
        tokens, ids, has_symbol = batch["tokens"], batch["expr_id"], batch["has_symbol"]
        out = {k: float(v) for k, v in self.masked_terms(step, tokens).items()}
        t = self.series_feature(step.clean(0))  # (B, e)
        s = self.symbol_feature(self.symbol(tokens))  # (B, e)
        sim = t @ s.T  # (B, B): series query x symbol candidate
        valid = key_validity(ids, has_symbol, ids.new_empty(0))  # (B, B)
        onehot = torch.eye(sim.shape[0], device=sim.device)
        weight = has_symbol.float()
        temp = self.temp
        out["itc"] = float(
            0.5
            * (
                contrastive_loss(sim / temp, onehot, valid, weight)
                + contrastive_loss(sim.T / temp, onehot, valid, weight)
            )
        )
        for k in (1, 10):
            out[f"t2s_top{k}"] = float(retrieval_hits(sim, ids, k).float().mean())
            out[f"s2t_top{k}"] = float(retrieval_hits(sim.T, ids, k).float().mean())
        return out


def retrieval_hits(sim: torch.Tensor, ids: torch.Tensor, k: int) -> torch.Tensor:
    """Whether each query's top-k candidates hold its skeleton.

    sim : (n, n) query x candidate similarities; ids : (n,) skeleton ids of
    both sides (query i's own pair is candidate i). Returns (n,) bool.
    """
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices  # (n, k)
    return (ids[top] == ids[:, None]).any(dim=1)
