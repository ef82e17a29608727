"""Gaussian diffusion in data space: schedule, forward noising, DDPM loss, DDIM sampler.

Notes
-----
Ho, Jain & Abbeel (2020), DDPM: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,
the network predicts eps. Song, Meng & Ermon (2021), DDIM: deterministic
(eta = 0) sampling on a sub-sequence of the training steps. The schedule is the
"linear in sqrt" one of TimeDP/OATS (oats.md section 3.2). Unlike OATS, the DDIM
sequence starts at t = T - 1 (bug 11 of oats.md section 6).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F


class Schedule:
    """Noise schedule of ``timesteps`` steps, beta_t = linspace(sqrt(b0), sqrt(b1), T)^2.

    Attributes are float64 tensors of shape (T,): ``betas``, ``alpha_bar``.
    """

    def __init__(self, timesteps: int, beta_start: float, beta_end: float) -> None:
        self.timesteps = timesteps
        root = torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64)
        self.betas = root**2
        self.alpha_bar = torch.cumprod(1.0 - self.betas, dim=0)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(abar_t) and sqrt(1 - abar_t) for integer steps ``t`` (B,), shaped (B, 1, 1)."""
        abar = self.alpha_bar[t].float()[:, None, None]  # (B, 1, 1)
        return abar.sqrt(), (1.0 - abar).sqrt()


def q_sample(
    schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Noised series x_t (B, 1, L) from clean x0 (B, 1, L), steps t (B,) and noise (B, 1, L)."""
    a, s = schedule.coefficients(t)
    return a * x0 + s * noise


def ddpm_loss(
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: Schedule,
    x0: torch.Tensor,
    generator: torch.Generator,
    loss: str = "mse",
) -> torch.Tensor:
    """Epsilon-prediction loss of ``denoiser(x_t, t)`` at uniform random steps.

    Parameters
    ----------
    denoiser : maps (x_t (B, 1, L), t (B,) int64) to predicted noise (B, 1, L).
    x0 : clean series (B, 1, L).
    generator : source of t and the noise.
    loss : "mse" or "l1".
    """
    b = x0.shape[0]
    t = torch.randint(0, schedule.timesteps, (b,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    predicted = denoiser(q_sample(schedule, x0, t, noise), t)
    if loss == "l1":
        return F.l1_loss(predicted, noise)
    return F.mse_loss(predicted, noise)


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """Descending, distinct steps from T - 1 to 0 used by DDIM (``steps`` of them)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"ddim_steps={steps} must be between 1 and timesteps={timesteps}")
    grid = torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long()
    return [int(v) for v in grid]


@torch.no_grad()
def ddim_sample(
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: Schedule,
    shape: tuple[int, int, int],
    steps: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from x_T ~ N(0, I): a sample x_0 of ``shape`` (B, 1, L).

    The starting noise is drawn on the CPU from ``generator`` (so a seed gives
    the same start on any device) and moved to ``device``; given it, the
    result is a fixed function of the denoiser.
    """
    x = torch.randn(shape, generator=generator).to(device)
    seq = ddim_timesteps(schedule.timesteps, steps)
    for i, t in enumerate(seq):
        tt = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = denoiser(x, tt)
        abar = schedule.alpha_bar[t].float()
        x0 = (x - (1.0 - abar).sqrt() * eps) / abar.sqrt()
        if i + 1 < len(seq):
            abar_next = schedule.alpha_bar[seq[i + 1]].float()
            x = abar_next.sqrt() * x0 + (1.0 - abar_next).sqrt() * eps
    return x0
