"""The pretrained series encoder as a reusable module: ``load_encoder``, ``random_encoder``.

``SeriesEncoder`` wraps the backbone of a checkpoint with the input handling
of pretraining, so any series can be embedded: resizing to the training
window (``resize="linear"``, the default: every series is linearly resampled
to ``window`` points, as in training's resampled spans; ``"none"``: the last
``window`` points, left-padded with the first value to whole patches),
instance normalisation (the level and scale it removes go to the backbone
beside the normalised series), and the backbone's instance embedding (for the ``s2``
backbone, [CLS] concatenated with the mean of the patch states: 2 * d_model values;
for ``gpt2``, the mean of the token states) or its token states (``forward_tokens``).
"""

import numpy as np
import torch
from torch import nn

from s2gen.pretrain import checkpoint
from s2gen.pretrain.backbones import build_backbone
from s2gen.pretrain.config import RESIZE_MODES, PretrainConfig
from s2gen.pretrain.scaling import fit_to_window, instance_norm, level_scale

LEVELS = ("instance", "patch")  # what ``SeriesEncoder.embed`` returns per series


class SeriesEncoder(nn.Module):
    """Series (B, L) -> embeddings (B, dim), or token states (B, N, d), for any L >= 1.

    Attributes
    ----------
    dim : embedding size (the backbone's ``embed_dim``).
    window, patch : the pretraining window and points per token.
    backbone : the series backbone (``s2gen.pretrain.backbones``).
    config : the pretraining config it was built from.
    """

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        self.config = cfg
        self.backbone = build_backbone(cfg)
        self.window, self.patch = cfg.window, self.backbone.token_points
        self.dim = self.backbone.embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def _hidden(self, x: torch.Tensor, resize: str) -> torch.Tensor:
        """The backbone's hidden states of series x (B, L)."""
        if x.ndim != 2 or x.shape[1] < 1:
            raise ValueError(f"x must have shape (B, L) with L >= 1, got {tuple(x.shape)}")
        x = fit_to_window(x.float(), self.window, self.patch, resize)
        return self.backbone(instance_norm(x), stats=level_scale(x))

    def forward_features(self, x: torch.Tensor, resize: str = "linear") -> torch.Tensor:
        """Differentiable embedding of series x (B, L) float -> (B, dim).

        ``resize`` "linear" resamples every series to ``window`` points; "none"
        keeps the last ``window`` points and left-pads shorter series.
        """
        return self.backbone.pool(self._hidden(x, resize))

    def forward_tokens(self, x: torch.Tensor, resize: str = "linear") -> torch.Tensor:
        """Differentiable token states of series x (B, L) -> (B, N, backbone.dim).

        N = ``backbone.n_tokens``: a token is ``token_points`` points of the
        resized series (one point for a per-step backbone); task heads
        (forecasting, reconstruction) read them. ``resize`` as in ``forward_features``.
        """
        return self.backbone.token_states(self._hidden(x, resize))

    @torch.no_grad()
    def embed(
        self, series, batch_size: int = 256, resize: str = "linear", level: str = "instance"
    ) -> np.ndarray:
        """Embeddings of many series under no_grad, in eval mode.

        Parameters
        ----------
        series : (n, L) array, or a list of 1-D arrays of any lengths; finite values.
        batch_size : series per forward pass.
        resize : "linear" or "none" (see ``forward_features``).
        level : "instance": one embedding per series; "patch": the token states
            (``forward_tokens``), which needs the same number of tokens for every
            series (always so with ``resize="linear"``).

        Returns
        -------
        (n, dim) or, for "patch", (n, N, backbone.dim) float32 numpy array, in input order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize={resize!r} is unknown; choose one of {RESIZE_MODES}")
        if level not in LEVELS:
            raise ValueError(f"level={level!r} is unknown; choose one of {', '.join(LEVELS)}")
        if isinstance(series, np.ndarray) and series.ndim == 2:
            series = list(series)
        rows = [np.asarray(s, np.float32).ravel() for s in series]
        for i, row in enumerate(rows):
            if row.size < 1:
                raise ValueError(f"series {i} is empty; every series needs a point")
            if not np.isfinite(row).all():
                raise ValueError(
                    f"series {i} has NaN or infinite values; fill or drop them before embedding"
                )
        lengths = np.array([len(r) for r in rows], np.int64)
        device = next(self.parameters()).device
        forward = self.forward_features if level == "instance" else self.forward_tokens
        was_training = self.training
        self.eval()
        out = None
        for length in np.unique(lengths):
            index = np.flatnonzero(lengths == length)
            for start in range(0, len(index), batch_size):
                part = index[start : start + batch_size]
                chunk = torch.from_numpy(np.stack([rows[i] for i in part])).to(device)
                values = forward(chunk, resize).float().cpu().numpy()
                if out is None:
                    out = np.zeros((len(rows), *values.shape[1:]), np.float32)
                if values.shape[1:] != out.shape[1:]:
                    raise ValueError(
                        f"series of {length} points give {values.shape[1]} tokens, others "
                        f"{out.shape[1]}: patch-level embeddings need one token count; use "
                        "resize='linear' or series of one length"
                    )
                out[part] = values
        self.train(was_training)
        if out is None:  # no series
            tokens = self.backbone.n_tokens(self.window)
            shape = (self.dim,) if level == "instance" else (tokens, self.backbone.dim)
            out = np.zeros((0, *shape), np.float32)
        return out


def load_encoder(
    checkpoint_path, device: str | torch.device = "cpu", backbone_weights: str | None = None
) -> SeriesEncoder:
    """The online series backbone of a checkpoint (``last.pt`` / ``best.pt``), in eval mode.

    ``backbone_weights``: for a ``gpt2`` backbone, the GPT-2 folder its frozen
    base is rebuilt from (default: the folder recorded at training); the
    base's hash must match the checkpoint's.
    """
    state = checkpoint.load(checkpoint_path, device)
    cfg = checkpoint.config_of(state)
    if backbone_weights is not None:
        cfg = cfg.replace(backbone_weights=str(backbone_weights))
    prefix = "series."
    weights = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
    try:
        encoder = SeriesEncoder(cfg)
    except ValueError as exc:
        base = weights.get("_extra_state", {}).get("base")  # gpt2: the record of its base
        raise ValueError(
            f"{checkpoint_path}: {exc}" + (f" (its base: {base})" if base else "")
        ) from exc
    try:
        encoder.backbone.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(
            f"{checkpoint_path} does not match this s2gen's encoder ({str(exc).splitlines()[0]}); "
            "it was written by another version: pretrain it again"
        ) from exc
    return encoder.to(device).eval()


def random_encoder(preset: str = "small", seed: int = 0, **overrides) -> SeriesEncoder:
    """An untrained ``SeriesEncoder`` of a preset's architecture (a baseline), in eval mode.

    Initialised from ``seed`` (also the config's seed, which draws a random
    ``gpt2`` base) without touching the global torch RNG.
    """
    cfg = PretrainConfig.preset(preset, **{**overrides, "seed": seed})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = SeriesEncoder(cfg)
    return encoder.eval()
