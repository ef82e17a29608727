"""Time-series influence scores (TSIS): per-sample gradients against a reference gradient.

For a training sample z_i and a reference set D_ref, at the current weights w_t:

    a_i    = < grad l(z_i; w_t), grad mean_{r in D_ref} l(r; w_t) >   (the alignment)
    TSIS_i = eta_t * a_i,  or -inf if the SNR gate removes z_i (``s2gen.oats.snr``)

with the dot product or the cosine. To first order one SGD step of size eta_t
on z_i alone changes the reference loss by -TSIS_i, so larger is more helpful.
The score cache keeps a_i; eta_t and the gate are applied when a score is used.

Notes
-----
Deng et al. (2026), OATS, the TSIS definition with the learning-rate factor and
the SNR gate (both missing from the released code, oats.md sections 2 and 6);
Pruthi et al. (2020), TracIn, for the first-order reading. Per-sample gradients
are computed in one pass with ``torch.func`` (``functional_call`` + ``vmap`` +
``grad``) instead of the released code's loop of backward passes.

``sample_loss(model, state, sample) -> scalar`` is the per-sample loss: it
calls ``torch.func.functional_call(model, state, ...)`` on one sample (a dict
of tensors without the batch dimension) and must have no data-dependent
control flow or randomness (masks come in as part of the sample).
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

SampleLoss = Callable[[nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]


def scored_parameters(model: nn.Module, prefixes: tuple[str, ...] = ()) -> list[str]:
    """Names of the trainable parameters whose gradients are scored (all if no prefixes)."""
    names = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (not prefixes or n.startswith(tuple(prefixes)))
    ]
    if not names:
        raise ValueError(
            f"param_prefixes={list(prefixes)} match no trainable parameter; give prefixes of "
            "names in model.named_parameters() (or none for all)"
        )
    return names


def _split_state(model: nn.Module, names: list[str]):
    scored = {n: p.detach() for n, p in model.named_parameters() if n in names}
    rest = {n: p.detach() for n, p in model.named_parameters() if n not in scored}
    rest.update({n: b.detach() for n, b in model.named_buffers()})
    return scored, rest


def per_sample_gradients(
    model: nn.Module, sample_loss: SampleLoss, batch: dict[str, torch.Tensor], names: list[str]
) -> torch.Tensor:
    """Gradient of each sample's loss w.r.t. the named parameters, in one vmapped pass.

    Parameters
    ----------
    model : the network (its parameters are read, not changed).
    sample_loss : per-sample loss (see the module notes).
    batch : tensors with a leading batch dimension B.
    names : parameters to differentiate (``scored_parameters``), in this order.

    Returns
    -------
    (B, P) float32, P = total size of the named parameters, flattened in ``names`` order.
    """
    scored, rest = _split_state(model, names)

    def loss_of(params, sample):
        return sample_loss(model, {**rest, **params}, sample)

    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no batching rule
        grads = vmap(grad(loss_of), in_dims=(None, 0))(scored, batch)
    b = next(iter(batch.values())).shape[0]
    return torch.cat([grads[n].reshape(b, -1).float() for n in names], dim=1)  # (B, P)


def reference_gradient(
    model: nn.Module, sample_loss: SampleLoss, batch: dict[str, torch.Tensor], names: list[str]
) -> torch.Tensor:
    """Gradient (P,) float32 of the mean per-sample loss over a reference ``batch``."""
    scored, rest = _split_state(model, names)

    def mean_loss(params):
        per = vmap(lambda s: sample_loss(model, {**rest, **params}, s))(batch)  # (R,)
        return per.mean()

    with sdpa_kernel(SDPBackend.MATH):
        g = grad(mean_loss)(scored)
    return torch.cat([g[n].reshape(-1).float() for n in names])  # (P,)


def alignment(
    per_sample: torch.Tensor, reference: torch.Tensor, similarity: str = "dot"
) -> np.ndarray:
    """Alignment (B,) float64 <g_i, g_ref> (or the cosine) of (B, P) and (P,) gradients.

    TSIS is the learning rate times the alignment.
    """
    g = per_sample.double()
    r = reference.double()
    if similarity == "dot":
        score = g @ r
    elif similarity == "cosine":
        score = (g @ r) / (g.norm(dim=1) * r.norm()).clamp_min(1e-30)
    else:
        raise ValueError(f"similarity={similarity!r} is invalid: choose dot or cosine")
    return score.numpy()
