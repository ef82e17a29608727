"""Time-series influence scores (TSIS): per-sample gradients against a reference gradient.

For a training sample z_i and a reference set D_ref, at the current weights w_t:

    TSIS_i = eta_t * < grad l(z_i; w_t), grad mean_{r in D_ref} l(r; w_t) >
    TSIS_i = -inf  if SNR_dB(z_i) < k   (the SNR gate)

with the dot product or the cosine. To first order one SGD step of size eta_t
on z_i alone changes the reference loss by -TSIS_i, so larger is more helpful.

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


def tsis(
    per_sample: torch.Tensor, reference: torch.Tensor, lr: float, similarity: str = "dot"
) -> np.ndarray:
    """TSIS (B,) float64 = lr * <g_i, g_ref> (or lr * cosine) from (B, P) and (P,) gradients."""
    g = per_sample.double()
    r = reference.double()
    if similarity == "dot":
        score = g @ r
    elif similarity == "cosine":
        score = (g @ r) / (g.norm(dim=1) * r.norm()).clamp_min(1e-30)
    else:
        raise ValueError(f"similarity={similarity!r} is invalid: choose dot or cosine")
    return (lr * score).numpy()


def snr_db(series: np.ndarray, window: int = 5) -> np.ndarray:
    """Signal-to-noise ratio (n,) in dB of each row of ``series`` (n, L).

    Signal = centred moving average of ``window`` points (edges use the valid
    part), noise = the residual; SNR = 10 log10(var(signal) / var(residual)).
    White noise gives about 10 log10(1 / (window - 1)) (-6 dB for 5); smooth
    series give large values. A row without residual gets +inf, a constant
    row (no signal either) -inf.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < window:
        raise ValueError(f"series has shape {x.shape}; give (n, L) with L >= window={window}")
    kernel = np.ones(window)
    ones = np.convolve(np.ones(x.shape[1]), kernel, mode="same")  # (L,) points per window
    smooth = np.stack([np.convolve(row, kernel, mode="same") for row in x]) / ones  # (n, L)
    resid = (x - smooth).var(axis=1)
    signal = smooth.var(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(signal / resid)
    return np.where(signal > 0, db, -np.inf)


def snr_gate(scores: np.ndarray, snr: np.ndarray, threshold_db: float) -> np.ndarray:
    """Scores with -inf where ``snr`` < ``threshold_db`` (a -inf threshold gates nothing)."""
    return np.where(np.asarray(snr) < threshold_db, -np.inf, np.asarray(scores, dtype=np.float64))
