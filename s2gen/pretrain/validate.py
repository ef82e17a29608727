"""Held-out validation: masked-modelling losses, MLM accuracy and cross-modal retrieval.

Retrieval follows ALBEF/SymTime practice: online encoders in eval mode on
clean (unmasked) inputs, galleries of 256 held-out pairs (chance 1/256), a
hit when the retrieved item carries the query's expression. Masks are drawn
from a generator with a fixed seed, so the numbers of two checkpoints compare.
"""

import torch

from s2gen.pretrain.losses import contrastive_loss, key_validity

GALLERY = 256  # candidates per retrieval gallery
_VAL_SEED = 20251008  # fixed mask seed of validation


def retrieval_hits(sim: torch.Tensor, ids: torch.Tensor, k: int) -> torch.Tensor:
    """Whether each query's top-k candidates hold its expression.

    sim : (n, n) query x candidate similarities; ids : (n,) expression ids of
    both sides (query i's own pair is candidate i). Returns (n,) bool.
    """
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices  # (n, k)
    return (ids[top] == ids[:, None]).any(dim=1)


@torch.no_grad()
def validate(model, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, float]:
    """Validation metrics of an ``S2Pretrainer`` on a held-out batch (``held_out_set``).

    Samples are cut into galleries of ``GALLERY`` (one smaller gallery if the
    set is smaller; then chance is 1/size, reported as ``val_gallery``).

    Returns
    -------
    ``val_mts``, ``val_mlm``, ``val_mlm_acc``, ``val_itc`` (in-gallery InfoNCE,
    hard targets, both ways), ``val_loss`` (weighted like the training loss),
    ``val_t2s_top1``, ``val_t2s_top10``, ``val_s2t_top1``, ``val_s2t_top10``,
    ``val_gallery``.
    """
    cfg = model.cfg
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(_VAL_SEED)
    n = batch["series"].shape[0]
    size = min(GALLERY, n)
    totals: dict[str, float] = {}
    galleries = 0
    for start in range(0, n - size + 1, size):
        part = {k: v[start : start + size].to(device) for k, v in batch.items()}
        for key, value in _gallery_metrics(model, part, generator).items():
            totals[key] = totals.get(key, 0.0) + value
        galleries += 1
    model.train(was_training)
    out = {key: value / galleries for key, value in totals.items()}
    out["val_loss"] = (
        cfg.w_mts * out["val_mts"] + cfg.w_mlm * out["val_mlm"] + cfg.w_itc * out["val_itc"]
    )
    out["val_gallery"] = float(size)
    return out


def _gallery_metrics(model, part, generator) -> dict[str, float]:
    series, tokens, ids = part["series"], part["tokens"], part["expr_id"]
    has_symbol = part["has_symbol"]
    B = series.shape[0]
    patches, _, _, mts, mlm, mlm_acc = model.masked_passes(series, tokens, generator)

    t = model.series_feature(model.series(patches))  # (B, e), clean input
    s = model.symbol_feature(model.symbol(tokens))  # (B, e)
    sim = t @ s.T  # (B, B): series query x symbol candidate
    valid = key_validity(ids, has_symbol, ids.new_empty(0))  # (B, B)
    onehot = torch.eye(B, device=sim.device)
    weight = has_symbol.float()
    temp = model.temp.detach()
    itc = 0.5 * (
        contrastive_loss(sim / temp, onehot, valid, weight)
        + contrastive_loss(sim.T / temp, onehot, valid, weight)
    )
    return {
        "val_mts": float(mts),
        "val_mlm": float(mlm),
        "val_mlm_acc": float(mlm_acc),
        "val_itc": float(itc),
        "val_t2s_top1": float(retrieval_hits(sim, ids, 1).float().mean()),
        "val_t2s_top10": float(retrieval_hits(sim, ids, 10).float().mean()),
        "val_s2t_top1": float(retrieval_hits(sim.T, ids, 1).float().mean()),
        "val_s2t_top10": float(retrieval_hits(sim.T, ids, 10).float().mean()),
    }
