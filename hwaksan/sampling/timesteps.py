"""Which timesteps (and noise levels) a sampler visits, in diffusers' exact conventions.

diffusers' schedulers disagree with each other, and samplers that claim its trajectories must
follow each one: DDPM/DDIM use integer timesteps; Euler/Heun use float timesteps and interpolate
sigmas linearly in t; DPM-Solver spaces N + 1 points and drops the last. The tables are built
with numpy in float64, as diffusers builds them, so the step counts come out the same.
"""

from __future__ import annotations

import numpy as np
import torch

from hwaksan.diffusion.schedule import NoiseSchedule

TIMESTEP_SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace")


def check_steps(steps: int, spacing: str, num_train_timesteps: int) -> None:
    """One clear ValueError for a step count or spacing the samplers cannot honour."""
    if spacing not in TIMESTEP_SPACINGS:
        raise ValueError(
            f"unknown timestep_spacing {spacing!r}; choose one of {', '.join(TIMESTEP_SPACINGS)}"
        )
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be between 1 and {num_train_timesteps}, got {steps}")


def _spaced(T: int, n: int, spacing: str, steps_offset: int, leading_ratio: int) -> np.ndarray:
    """Descending float timesteps; `leading_ratio` is T // n (DDIM, Euler) or T // (n + 1) (DPM)."""
    if spacing == "linspace":
        return np.linspace(0, T - 1, n)[::-1].copy()
    if spacing == "leading":
        return (np.arange(0, n) * leading_ratio).round()[::-1].astype(np.float64) + steps_offset
    return np.arange(T, 0, -T / n).round() - 1  # "trailing"


def discrete_timesteps(
    schedule: NoiseSchedule, steps: int, spacing: str = "leading", steps_offset: int = 0
) -> torch.Tensor:
    """Descending int64 timesteps of diffusers' DDPMScheduler / DDIMScheduler.set_timesteps."""
    T = schedule.num_train_timesteps
    timesteps = _spaced(T, steps, spacing, steps_offset, T // steps)
    return torch.from_numpy(timesteps.round().astype(np.int64))


def discrete_table(
    schedule: NoiseSchedule,
    steps: int,
    spacing: str = "leading",
    steps_offset: int = 0,
    use_karras_sigmas: bool = False,
) -> tuple[torch.Tensor, None]:
    """(int64 timesteps [N], no sigmas): the table of the VP samplers (DDPM, DDIM), in the
    signature every sampler's table shares (they take no Karras sigmas)."""
    return discrete_timesteps(schedule, steps, spacing, steps_offset), None


def ddim_prev_timesteps(timesteps: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    """DDIM's target of each step, t - T // N (diffusers' rule; -1 or below means alpha = 1).

    For "leading" spacing this is the next timestep; for the others it can differ from it by a
    few steps — diffusers' DDIMScheduler does exactly this, so we do too.
    """
    return timesteps - num_train_timesteps // len(timesteps)


def sigma_to_t(sigma: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """The float timestep of each sigma, interpolating log-sigma between table entries (the
    inverse of `NoiseSchedule.sigma_at`)."""
    log_sigmas = sigmas.log()
    log_sigma = sigma.clamp(min=1e-10).log()
    low = (log_sigmas[:, None] <= log_sigma[None, :]).long().cumsum(0).argmax(0)
    low = low.clamp(max=len(sigmas) - 2)
    w = ((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
    return (1 - w) * low + w * (low + 1)


def karras_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """n sigmas from sigma_max to sigma_min, evenly spaced in sigma^(1/rho) (Karras 2022, eq. 5)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    max_inv, min_inv = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (max_inv + ramp * (min_inv - max_inv)) ** rho


def euler_sigmas(
    schedule: NoiseSchedule,
    steps: int,
    spacing: str = "linspace",
    steps_offset: int = 0,
    use_karras_sigmas: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(float timesteps [N], sigmas [N + 1] ending in 0) of EulerDiscrete/HeunDiscreteScheduler."""
    T = schedule.num_train_timesteps
    table = schedule.sigma_table()
    timesteps = torch.from_numpy(_spaced(T, steps, spacing, steps_offset, T // steps))
    # Sigmas are interpolated linearly in t (float timesteps fall between table entries).
    sigmas = torch.from_numpy(np.interp(timesteps.numpy(), np.arange(T), table.numpy()))
    if use_karras_sigmas:
        sigmas = karras_sigmas(sigmas[-1].item(), sigmas[0].item(), steps)
        timesteps = sigma_to_t(sigmas, table)
    return timesteps.float(), torch.cat([sigmas, sigmas.new_zeros(1)])


def dpm_sigmas(
    schedule: NoiseSchedule,
    steps: int,
    spacing: str = "linspace",
    steps_offset: int = 0,
    use_karras_sigmas: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(int64 timesteps [N], sigmas [N + 1] ending in 0) of DPMSolverMultistepScheduler."""
    T = schedule.num_train_timesteps
    table = schedule.sigma_table()
    if spacing == "trailing":
        timesteps = _spaced(T, steps, spacing, steps_offset, T // steps)
    else:  # N + 1 points spaced as usual, the last one (t = 0) dropped
        timesteps = _spaced(T, steps + 1, spacing, steps_offset, T // (steps + 1))[:-1].round()
    timesteps = torch.from_numpy(timesteps.copy())
    if use_karras_sigmas:
        # Karras over the whole table, whatever the spacing; timesteps rounded (cosine: truncated).
        sigmas = karras_sigmas(table[0].item(), table[-1].item(), steps)
        timesteps = sigma_to_t(sigmas, table)
        timesteps = (
            timesteps.floor() if schedule.config.beta_schedule == "cosine" else timesteps.round()
        )
    else:
        sigmas = torch.from_numpy(np.interp(timesteps.numpy(), np.arange(T), table.numpy()))
    return timesteps.long(), torch.cat([sigmas, sigmas.new_zeros(1)])
