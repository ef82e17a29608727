"""The guided diffusion generator: training, sampling and checkpoints.

A ``Generator`` holds the EMA weights of a ``GuidedDenoiser`` trained on
per-window z-scored series. ``Generator.sample`` draws new series guided by
given series (one per guide, de-normalised with the guide's own mean and
standard deviation) or unguided.

Notes
-----
Training follows TimeDP (Huang et al., AAAI 2025) as used by OATS (Deng et al.,
2026; oats.md sections 3 and 5.2): the prompt of a training window is the
window itself (self-conditioning through the K-prototype bottleneck), the
condition is dropped with probability ``cond_drop``, epsilon is predicted, and
sampling is DDIM (eta = 0) with the EMA weights (OATS sampled with the raw
weights, bug 11 of oats.md section 6).
"""

import copy
import logging
from pathlib import Path

import numpy as np
import torch

from s2gen import __version__
from s2gen.oats.config import GeneratorConfig
from s2gen.oats.diffusion import Schedule, ddim_sample, ddpm_loss
from s2gen.oats.unet import GuidedDenoiser

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "s2gen-oats-generator"
CHECKPOINT_VERSION = 1


def zscore(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row z-score of ``series`` (n, L) in float64.

    Returns
    -------
    z : (n, L) float64; loc, scale : (n,) float64, the row means and standard
        deviations (1 for a constant row), so that ``unzscore(z, loc, scale)``
        gives the rows back.
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"series has shape {x.shape}; give a 2-D array (n, L)")
    if not np.isfinite(x).all():
        raise ValueError("series holds NaN or inf values; drop or repair those rows first")
    loc = x.mean(axis=1)
    scale = x.std(axis=1)
    scale = np.where(scale > 0.0, scale, 1.0)
    return (x - loc[:, None]) / scale[:, None], loc, scale


def unzscore(z: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse of ``zscore``: z (n, L), loc and scale (n,) -> series (n, L) float64."""
    return np.asarray(z, dtype=np.float64) * scale[:, None] + loc[:, None]


def _check_length(length: int) -> None:
    if length < 8 or length % 4:
        raise ValueError(
            f"series length {length} is not supported: the U-Net halves it twice, so it must be a "
            "multiple of 4 and at least 8 (generate the store with e.g. --length 128)"
        )


def _build(cfg: GeneratorConfig) -> GuidedDenoiser:
    """A freshly initialised denoiser; initialisation is a function of ``cfg.seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return GuidedDenoiser(cfg)


class Generator:
    """A trained guided diffusion generator of series of length ``length``.

    Parameters
    ----------
    cfg : the configuration it was trained with.
    length : L, the series length it was trained on.
    model : the denoiser holding the EMA weights (used for sampling).
    history : training loss per step.
    source : where the training series came from (store path, rows, field).
    """

    def __init__(
        self,
        cfg: GeneratorConfig,
        length: int,
        model: GuidedDenoiser,
        history: list[float],
        source: dict,
    ) -> None:
        self.cfg = cfg
        self.length = length
        self.model = model.eval()
        self.history = history
        self.source = source
        self.schedule = Schedule(cfg.timesteps, cfg.beta_start, cfg.beta_end)
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "Generator":
        """Sample on ``device`` from now on (the weights move there); returns self."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def sample(
        self,
        guides: np.ndarray | None = None,
        n: int | None = None,
        guidance_scale: float | None = None,
        ddim_steps: int | None = None,
        seed: int = 0,
        batch_size: int = 256,
    ) -> np.ndarray:
        """Draw series, one per guide (guided) or ``n`` unguided ones.

        Parameters
        ----------
        guides : (n, L) guiding series in any scale, or None for unguided
            samples. A guided sample is returned in its guide's scale
            (guide mean + guide std * z-sample).
        n : number of unguided samples (must be None or len(guides) with guides).
        guidance_scale : classifier-free guidance w (default ``cfg.guidance_scale``;
            1 = conditional prediction only).
        ddim_steps : DDIM steps (default ``cfg.ddim_steps``).
        seed : seed of the starting noise; same seed, same samples.
        batch_size : samples denoised together.

        Returns
        -------
        (n, L) float32; unguided samples are in z-scored units.
        """
        scale = self.cfg.guidance_scale if guidance_scale is None else float(guidance_scale)
        steps = self.cfg.ddim_steps if ddim_steps is None else int(ddim_steps)
        if guides is None:
            if n is None or n < 1:
                raise ValueError("give guides, or the number n >= 1 of unguided samples")
            z, loc, sd = None, np.zeros(n), np.ones(n)
        else:
            guides = np.asarray(guides)
            if guides.ndim != 2 or guides.shape[1] != self.length:
                raise ValueError(
                    f"guides have shape {guides.shape}; this generator makes series of length "
                    f"{self.length}, give (n, {self.length})"
                )
            if n is not None and n != len(guides):
                raise ValueError(f"n={n} differs from the {len(guides)} guides; leave n out")
            z, loc, sd = zscore(guides)
            n = len(guides)
        rng = torch.Generator().manual_seed(seed)
        out = np.empty((n, self.length), dtype=np.float64)
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            cond = None
            if z is not None:
                prompt = torch.as_tensor(z[start:stop], dtype=torch.float32, device=self.device)
                cond = self.model.condition(prompt)

            def denoise(x, t, cond=cond):
                return self.model.guided(x, t, cond, scale)

            shape = (stop - start, 1, self.length)
            x0 = ddim_sample(denoise, self.schedule, shape, steps, rng, self.device)
            out[start:stop] = x0[:, 0].double().cpu().numpy()
        return unzscore(out, loc, sd).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the checkpoint (EMA weights, config, length, history, source) to ``path``."""
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "package_version": __version__,
                "torch_version": str(torch.__version__),
                "config": self.cfg.to_dict(),
                "length": self.length,
                "state_dict": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "history": list(self.history),
                "source": dict(self.source),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> "Generator":
        """Read a checkpoint written by ``save``; refuses other files naming the fix."""
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise ValueError(
                f"no generator at {path}; train one with `s2gen oats train-generator`"
            ) from exc
        except Exception as exc:  # torch raises several types for foreign files
            raise ValueError(
                f"{path} is not a readable generator checkpoint: torch cannot read it "
                f"({type(exc).__name__}: {exc}); give the .pt of `s2gen oats train-generator`"
            ) from exc
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not an s2gen OATS generator checkpoint")
        if ckpt["version"] != CHECKPOINT_VERSION:
            raise ValueError(
                f"{path} is generator checkpoint version {ckpt['version']}; this s2gen reads "
                f"version {CHECKPOINT_VERSION}: retrain it with `s2gen oats train-generator`"
            )
        cfg = GeneratorConfig.from_dict(ckpt["config"])
        model = _build(cfg)
        model.load_state_dict(ckpt["state_dict"])
        return cls(cfg, int(ckpt["length"]), model, list(ckpt["history"]), dict(ckpt["source"]))


def train_generator(
    series: np.ndarray, cfg: GeneratorConfig, source: dict | None = None, log_every: int = 0
) -> Generator:
    """Train a guided diffusion generator on ``series``.

    Parameters
    ----------
    series : (N, L) training windows (any scale; each is z-scored), L a
        multiple of 4.
    cfg : architecture, schedule and optimisation; ``cfg.seed`` decides
        initialisation, batches, steps, noise and condition dropout.
    source : description of the data, stored in the checkpoint.
    log_every : log the mean loss every this many steps (0 = never).

    Returns
    -------
    The ``Generator`` with the EMA weights and the per-step loss history.
    """
    z, _, _ = zscore(series)
    n, length = z.shape
    _check_length(length)
    if n < 2:
        raise ValueError(f"{n} training series is too few; give at least 2")
    data = torch.as_tensor(z, dtype=torch.float32)  # (N, L)
    model = _build(cfg).train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    schedule = Schedule(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(cfg.warmup, 1)
    lr_at = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    rng = torch.Generator().manual_seed(cfg.seed)
    history: list[float] = []
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=rng)
        x0 = data[idx]  # (B, L)
        drop = torch.rand(len(idx), generator=rng) < cfg.cond_drop  # (B,)

        def denoise(xt, t, x0=x0, drop=drop):
            return model(xt, t, x0, drop)

        loss = ddpm_loss(denoise, schedule, x0[:, None, :], rng, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        lr_at.step()
        decay = min(cfg.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1.0 - decay)
            for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                be.copy_(bm)
        history.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            log.info("generator step %d: loss %.4f", step + 1, np.mean(history[-log_every:]))
    info = {"rows": n, "length": length, **(source or {})}
    return Generator(cfg, length, ema, history, info)
