"""The pretrained series encoder as a reusable module: ``load_encoder``, ``random_encoder``.

``SeriesEncoder`` wraps the online ``PatchEncoder`` of a checkpoint with the
input handling of pretraining, so any series can be embedded: resizing to
the ``window`` by linear interpolation (or, with ``resize="none"``, the last
``window`` points and left edge padding to whole patches), instance
normalisation (as ``s2gen.pretrain.data.normalize_windows``) and the [CLS]
state as the embedding.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2gen.pretrain import checkpoint
from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.data import CLIP, NORM_EPS
from s2gen.pretrain.model import PatchEncoder

RESIZE_MODES = ("linear", "none")


class SeriesEncoder(nn.Module):
    """Series (B, L) -> embeddings (B, dim), for any L >= 1.

    Attributes
    ----------
    dim : embedding size (the encoder's d_model).
    window, patch : the pretraining window and patch length.
    encoder : the ``PatchEncoder``.
    """

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        self.window, self.patch, self.dim = cfg.window, cfg.patch, cfg.d_model
        self.encoder = PatchEncoder(
            cfg.patch,
            cfg.n_patches,
            cfg.d_model,
            cfg.n_heads,
            cfg.d_ff,
            cfg.n_layers,
            cfg.dropout,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def forward_features(self, x: torch.Tensor, resize: str = "linear") -> torch.Tensor:
        """Differentiable [CLS] embedding of series x (B, L) float32 -> (B, dim).

        ``resize="linear"`` resamples every series to ``window`` points by
        linear interpolation (first and last points kept; Mantis resizes its
        inputs so). ``resize="none"`` keeps the last ``window`` points and
        left-pads a shorter series by repeating its first value to a whole
        number of patches. Each series is normalised over its points before
        padding.
        """
        if x.ndim != 2 or x.shape[1] < 1:
            raise ValueError(f"x must have shape (B, L) with L >= 1, got {tuple(x.shape)}")
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize={resize!r}: choose one of {RESIZE_MODES}")
        x = x.float()
        if resize == "linear" and x.shape[1] != self.window:
            x = F.interpolate(x.unsqueeze(1), size=self.window, mode="linear", align_corners=True)
            x = x.squeeze(1)  # (B, window)
        x = x[:, -self.window :]
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        x = ((x - mean) / torch.sqrt(var + NORM_EPS)).clamp(-CLIP, CLIP)
        n_patches = -(-x.shape[1] // self.patch)
        pad = n_patches * self.patch - x.shape[1]
        x = F.pad(x.unsqueeze(1), (pad, 0), mode="replicate").squeeze(1)  # (B, P * patch)
        patches = x.unflatten(-1, (n_patches, self.patch))  # (B, P, patch)
        return self.encoder(patches)[:, 0]

    @torch.no_grad()
    def embed(self, series, batch_size: int = 256, resize: str = "linear") -> np.ndarray:
        """Embeddings of many series under no_grad, in eval mode.

        Parameters
        ----------
        series : (n, L) array, or a list of 1-D arrays of any lengths.
        batch_size : series per forward pass.
        resize : "linear" or "none", as in ``forward_features``.

        Returns
        -------
        (n, dim) float32 numpy array, in input order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize={resize!r}: choose one of {RESIZE_MODES}")
        if isinstance(series, np.ndarray) and series.ndim == 2:
            series = list(series)
        rows = [np.asarray(s, np.float32).ravel() for s in series]
        lengths = np.array([len(r) for r in rows], np.int64)
        if (lengths < 1).any():
            raise ValueError(
                f"series {int(np.argmin(lengths))} is empty; every series needs a point"
            )
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        out = np.zeros((len(rows), self.dim), np.float32)
        for length in np.unique(lengths):
            index = np.flatnonzero(lengths == length)
            for start in range(0, len(index), batch_size):
                part = index[start : start + batch_size]
                chunk = torch.from_numpy(np.stack([rows[i] for i in part])).to(device)
                out[part] = self.forward_features(chunk, resize).float().cpu().numpy()
        self.train(was_training)
        return out


def load_encoder(checkpoint_path, device: str | torch.device = "cpu") -> SeriesEncoder:
    """The online series encoder of a checkpoint (``last.pt`` / ``best.pt``), in eval mode."""
    state = checkpoint.load(checkpoint_path, device)
    encoder = SeriesEncoder(checkpoint.config_of(state))
    prefix = "series."
    weights = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
    encoder.encoder.load_state_dict(weights)
    return encoder.to(device).eval()


def random_encoder(preset: str = "small", seed: int = 0, **overrides) -> SeriesEncoder:
    """An untrained ``SeriesEncoder`` of a preset's architecture (a baseline), in eval mode.

    Initialised from ``seed`` without touching the global torch RNG.
    """
    cfg = PretrainConfig.preset(preset, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = SeriesEncoder(cfg)
    return encoder.eval()
