"""Task heads on a series encoder's token states: forecasting and reconstruction.

Channel independence (PatchTST, GPT4TS): every channel is a univariate series
that passes through the same encoder and head, so one head serves any number
of channels. The encoder is a ``SeriesEncoder`` (``forward_tokens``,
``window``, ``patch``, ``backbone.dim``), trained with the head or frozen.

- ``EncoderForecaster``: a context (B, L) -> the next H values (B, H). The
  token states (B, N, d) are flattened and a linear map gives H values in the
  context's normalised units (its mean and standard deviation, as RevIN
  without the affine part), which are mapped back (PatchTST's flatten head).
- ``EncoderReconstructor``: a window (B, window) -> its reconstruction in the
  normalised space, each token's state mapped linearly to its points; the
  anomaly score of a point is its squared reconstruction error (the
  reconstruction protocol of GPT4TS, Zhou et al. 2023).
- ``reconstruction_scores``: per-point scores of a whole series (the
  "reconstruction" anomaly score).

The heads' initialisation draws from a ``generator`` (the caller's global RNG
is not used).
"""

import math

import numpy as np
import torch
from torch import nn

from s2gen.pretrain.scaling import NORM_EPS, fit_to_window, instance_norm


def _init_linear(layer: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """Uniform(+-1/sqrt(fan_in)) weights from ``generator``, zero bias."""
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.zero_()
    return layer


class EncoderForecaster(nn.Module):
    """Context (B, context) -> forecast (B, horizon): flatten the token states, one linear map.

    Parameters
    ----------
    encoder : a ``SeriesEncoder``.
    context, horizon : input and output lengths.
    generator : seeds the head.
    resize : how the encoder brings the context to its window.
    """

    def __init__(
        self,
        encoder: nn.Module,
        context: int,
        horizon: int,
        generator: torch.Generator,
        resize: str = "linear",
    ) -> None:
        super().__init__()
        self.encoder, self.context, self.horizon, self.resize = encoder, context, horizon, resize
        length = fit_to_window(torch.zeros(1, context), encoder.window, encoder.patch, resize)
        n_tokens = length.shape[1] // encoder.patch
        self.head = _init_linear(nn.Linear(n_tokens * encoder.backbone.dim, horizon), generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, context) -> (B, horizon), in the units of x."""
        x = x.float()
        mean = x.mean(dim=1, keepdim=True)  # (B, 1)
        std = torch.sqrt(x.var(dim=1, unbiased=False, keepdim=True) + NORM_EPS)  # (B, 1)
        tokens = self.encoder.forward_tokens(x, resize=self.resize)  # (B, N, d)
        return self.head(tokens.flatten(1)) * std + mean  # (B, H)


class EncoderReconstructor(nn.Module):
    """Window (B, window) -> reconstruction (B, window) of the instance-normalised window.

    Parameters
    ----------
    encoder : a ``SeriesEncoder``; windows have its ``window`` points.
    generator : seeds the head.
    """

    def __init__(self, encoder: nn.Module, generator: torch.Generator) -> None:
        super().__init__()
        self.encoder, self.window = encoder, encoder.window
        self.head = _init_linear(nn.Linear(encoder.backbone.dim, encoder.patch), generator)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, window) -> (reconstruction, target), both (B, window), normalised units."""
        if x.ndim != 2 or x.shape[1] != self.window:
            raise ValueError(f"x must have shape (B, {self.window}), got {tuple(x.shape)}")
        tokens = self.encoder.forward_tokens(x.float())  # (B, N, d)
        return self.head(tokens).flatten(1), instance_norm(x)  # (B, N * patch) = (B, window)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error of every point, (B, window)."""
        recon, target = self(x)
        return (recon.float() - target).pow(2)


@torch.no_grad()
def reconstruction_scores(
    model: EncoderReconstructor, values: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Anomaly score of every point of a series: its squared reconstruction error.

    The series is cut into windows of ``model.window`` points starting at 0,
    window, 2 * window, ... and one more ending at the last point; a point
    covered twice gets the mean of its two scores.

    Parameters
    ----------
    model : a trained reconstructor (run in eval mode here, then restored).
    values : (T,) finite series, T >= model.window.
    batch_size : windows per forward pass.

    Returns
    -------
    (T,) float64 scores, higher = more anomalous.
    """
    values = np.asarray(values, dtype=np.float32)
    size, window = values.size, model.window
    if values.ndim != 1 or size < window:
        raise ValueError(
            f"values must be 1-D with at least window={window} points, got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("values hold NaN or inf; fill the gaps before scoring")
    starts = np.unique(np.append(np.arange(0, size - window + 1, window), size - window))
    windows = np.stack([values[s : s + window] for s in starts])  # (n, window)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts = [
        model.scores(torch.from_numpy(windows[i : i + batch_size]).to(device)).cpu().numpy()
        for i in range(0, len(windows), batch_size)
    ]
    model.train(was_training)
    per_window = np.concatenate(parts).astype(np.float64)  # (n, window)
    total, count = np.zeros(size), np.zeros(size)
    for start, score in zip(starts, per_window, strict=True):
        total[start : start + window] += score
        count[start : start + window] += 1
    return total / count
