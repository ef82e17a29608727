"""How a series reaches the encoder: resizing to the window and instance normalisation.

- ``resize_linear``: a series of any length onto ``n`` evenly spaced points by
  linear interpolation (first and last points kept), as Mantis resizes every
  series to its context length; training sees such resized spans too
  (``s2gen.pretrain.data``), so short and long real series look familiar.
- ``left_pad``: keep a length (``resize="none"``): pad at the start by repeating
  the first value up to whole patches, cut longer series to their last points.
- ``instance_norm``: (x - mean) / sqrt(var + 1e-5) with the statistics of the
  *visible* points only, clipped to +-10. Masked points must not inform the
  statistics, or a masked-series loss can be lowered by predicting the leaked
  mean (the leak of issue 14); at evaluation every point is visible.
- ``level_scale``: what the normalisation removes, (asinh(mean), log(std)) of
  the same visible points, which the backbone receives beside the normalised
  window (``PretrainConfig.scale_token``): some real series are told apart by
  their level and scale alone.
"""

import torch
import torch.nn.functional as F

from s2gen.pretrain.config import RESIZE_MODES

NORM_EPS = 1e-5  # variance floor of the instance normalisation
CLIP = 10.0  # normalised values are clipped to +-CLIP standard deviations


def _moments(x: torch.Tensor, visible: torch.Tensor | None):
    """Mean and variance (B, 1) of each row's visible points (all when ``visible`` is None)."""
    x = x.float()
    if visible is None:
        return x.mean(dim=1, keepdim=True), x.var(dim=1, unbiased=False, keepdim=True)
    w = visible.to(x.dtype)
    count = w.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (x * w).sum(dim=1, keepdim=True) / count
    return mean, ((x - mean).pow(2) * w).sum(dim=1, keepdim=True) / count


def instance_norm(x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """Normalise each row of x (B, L) with the mean and variance of its visible points.

    visible : (B, L) bool, True = the point may inform the statistics (all when None).
    Returns (B, L) float32, clipped to +-CLIP.
    """
    mean, var = _moments(x, visible)
    return ((x.float() - mean) / torch.sqrt(var + NORM_EPS)).clamp(-CLIP, CLIP)


def level_scale(x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 2) float32: asinh(mean) and log(std) of each row's visible points (``_moments``)."""
    mean, var = _moments(x, visible)
    return torch.cat([torch.asinh(mean), 0.5 * torch.log(var + NORM_EPS)], dim=1)


def resize_linear(x: torch.Tensor, n: int) -> torch.Tensor:
    """x (B, L) onto n points: value at i is x at position i * (L - 1) / (n - 1)."""
    if x.shape[1] == n:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, n)
    return F.interpolate(x.unsqueeze(1), size=n, mode="linear", align_corners=True).squeeze(1)


def left_pad(x: torch.Tensor, window: int, patch: int) -> torch.Tensor:
    """The last ``window`` points of x (B, L), left-padded with the first value to whole patches."""
    x = x[:, -window:]
    pad = -x.shape[1] % patch
    return F.pad(x.unsqueeze(1), (pad, 0), mode="replicate").squeeze(1) if pad else x


def fit_to_window(x: torch.Tensor, window: int, patch: int, resize: str) -> torch.Tensor:
    """Bring series x (B, L) to what the encoder takes: ``resize`` "linear" or "none"."""
    if resize == "linear":
        return resize_linear(x, window)
    if resize == "none":
        return left_pad(x, window, patch)
    raise ValueError(f"resize={resize!r} is unknown; choose one of {', '.join(RESIZE_MODES)}")
