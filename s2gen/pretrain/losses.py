"""Masks and losses of the pretraining stage, as small pure functions.

Masked series modelling (SymTime: 40% of patches, loss on masked patches only,
here with a learned mask token), BERT-style masked symbol modelling, and the
series <-> symbol contrastive loss with ALBEF's momentum-distilled soft targets
(one softmax: SymTime's released code softmaxes the targets a second time,
which flattens them to nearly uniform; see reference/symtime.md section 8.1).

Every random draw takes an explicit ``torch.Generator`` (drawn on the CPU,
then moved), so masks are reproducible and a resume continues exactly.
"""

import torch
import torch.nn.functional as F

IGNORE = -100  # label of tokens the MLM loss skips (torch's cross_entropy default)


def n_masked(n_patches: int, ratio: float) -> int:
    """Patches masked per window: round(ratio * P), at least 1 and at most P - 1."""
    if ratio <= 0 or n_patches < 2:
        return 0
    return min(n_patches - 1, max(1, round(ratio * n_patches)))


def draw_patch_mask(
    batch: int, n_patches: int, ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """Exactly ``n_masked(P, ratio)`` masked patches per row, uniformly placed.

    Returns
    -------
    mask : (batch, n_patches) bool on the CPU, True = masked.
    """
    k = n_masked(n_patches, ratio)
    noise = torch.rand(batch, n_patches, generator=generator)  # (B, P)
    rank = noise.argsort(dim=1).argsort(dim=1)  # (B, P): rank of each patch's noise
    return rank < k


def draw_token_mask(
    tokens: torch.Tensor,
    ratio: float,
    generator: torch.Generator,
    *,
    pad_id: int,
    mask_id: int,
    first_regular: int,
    vocab_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of expression tokens: choose ~ratio of the real tokens.

    Of the chosen tokens, 80% become ``mask_id``, 10% a random regular token
    (ids ``first_regular .. vocab_size - 1``: never a special token) and 10%
    stay. Padding is never chosen.

    Parameters
    ----------
    tokens : (B, T) int64, ``pad_id`` = padding.

    Returns
    -------
    inputs : (B, T) int64, the corrupted tokens.
    labels : (B, T) int64, the original token where chosen, else ``IGNORE``.
    """
    shape = tokens.shape
    device = tokens.device
    choose = torch.rand(shape, generator=generator).to(device) < ratio
    choose &= tokens != pad_id
    action = torch.rand(shape, generator=generator).to(device)
    random_ids = torch.randint(first_regular, vocab_size, shape, generator=generator).to(device)
    labels = torch.where(choose, tokens, IGNORE)
    inputs = torch.where(choose & (action < 0.8), mask_id, tokens)
    inputs = torch.where(choose & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    return inputs, labels


def masked_patch_error(recon: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor):
    """Mean squared error over the masked patches of each row.

    recon, patches : (B, P, patch); mask : (B, P) bool. Returns (B,) float,
    0 for a row without masked patches.
    """
    err = (recon.float() - patches).pow(2).mean(-1)  # (B, P)
    weight = mask.to(err.dtype)
    return (err * weight).sum(-1) / weight.sum(-1).clamp_min(1.0)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy and accuracy over the chosen tokens (0 and 0 if none is chosen).

    logits : (B, T, V); labels : (B, T) with ``IGNORE`` where not chosen.
    """
    flat = logits.float().flatten(0, 1)  # (B*T, V)
    target = labels.flatten()  # (B*T,)
    chosen = target != IGNORE
    count = chosen.sum().clamp_min(1)
    loss = F.cross_entropy(flat, target, ignore_index=IGNORE, reduction="sum") / count
    correct = ((flat.argmax(-1) == target) & chosen).sum() / count
    return loss, correct


def key_validity(
    ids: torch.Tensor, has_symbol: torch.Tensor, queue_ids: torch.Tensor
) -> torch.Tensor:
    """Which keys each query may be contrasted with.

    Keys are the batch (its own positive on the diagonal) followed by the
    queue. A key is excluded when it carries the query's expression (a window
    of the same expression is no negative), when it has no symbol, or when it
    is an empty queue slot (id -1). The diagonal always stays, so every row
    has a finite softmax.

    Parameters
    ----------
    ids : (B,) int64 expression ids (equal id = same expression).
    has_symbol : (B,) bool.
    queue_ids : (Q,) int64, -1 = empty slot.

    Returns
    -------
    (B, B + Q) bool, True = usable key.
    """
    batch = ids.shape[0]
    diag = torch.eye(batch, dtype=torch.bool, device=ids.device)  # (B, B)
    in_batch = has_symbol[None, :] & (ids[None, :] != ids[:, None])
    in_queue = (queue_ids[None, :] >= 0) & (queue_ids[None, :] != ids[:, None])  # (B, Q)
    return torch.cat([in_batch | diag, in_queue], dim=1)


def distill_targets(momentum_logits: torch.Tensor, valid: torch.Tensor, alpha: float):
    """ALBEF targets: alpha * softmax(momentum logits) + (1 - alpha) * one-hot.

    The positive of query i is key i. One softmax only, over the valid keys;
    each row sums to one and equals the one-hot at alpha = 0.

    momentum_logits, valid : (B, N); returns (B, N) float.
    """
    batch, n_keys = momentum_logits.shape
    soft = momentum_logits.float().masked_fill(~valid, float("-inf")).softmax(dim=1)
    onehot = torch.eye(batch, n_keys, device=soft.device)
    return alpha * soft + (1.0 - alpha) * onehot


def contrastive_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Soft-target InfoNCE: weighted mean over queries of -sum_k target * log p(k).

    Parameters
    ----------
    logits : (B, N) similarities / temperature; invalid keys are left out of the softmax.
    targets : (B, N) rows summing to one (0 on invalid keys).
    valid : (B, N) bool.
    weight : (B,) float, 0 for queries that take no part (no symbol).
    """
    logp = logits.float().masked_fill(~valid, float("-inf")).log_softmax(dim=1)
    per_query = -torch.where(valid, targets * logp, 0.0).sum(dim=1)  # (B,)
    return (per_query * weight).sum() / weight.sum().clamp_min(1.0)
