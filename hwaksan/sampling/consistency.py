"""Multistep consistency sampling (Song et al. 2023, Alg. 1) and the noise levels it visits.

A consistency model maps any x = x0 + sigma eps straight to x0. One step: x0 = f(x_T, sigma_max).
More steps alternate: re-noise x0 to the next level, x = x0 + sqrt(sigma^2 - sigma_min^2) z, and
map it back. The levels are Karras et al. 2022's rho = 7 ramp from sigma_max down to (not
including) sigma_min, each snapped to a (float) timestep of the model's schedule, so the sigma
the sampler uses is the one the model reads from t.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from hwaksan.diffusion.consistency import SIGMA_MAX
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling.denoiser import Denoiser, noise_like
from hwaksan.sampling.hooks import Callback, sigma_hook
from hwaksan.sampling.timesteps import karras_sigmas, sigma_to_t


def sigma_range(schedule: NoiseSchedule, sigma_max: float = SIGMA_MAX) -> tuple[float, float]:
    """(sigma_min, sigma_max) of a consistency model on `schedule`: its sigma at t = 0, and
    `sigma_max` (80, as in Song et al. 2023) or the schedule's top if that is lower."""
    top = float(schedule.sigma_at(torch.tensor([schedule.num_train_timesteps - 1.0]))[0])
    return float(schedule.sigma_at(torch.zeros(1))[0]), min(sigma_max, top)


def snap_to_schedule(
    schedule: NoiseSchedule, sigmas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(float timesteps, float64 sigmas) of `sigmas` [N]: each read back from its timestep, as a
    model that reads sigma from t sees it (sigma_min maps to t = 0 exactly)."""
    t = sigma_to_t(sigmas.double(), schedule.sigma_table())
    t = torch.where(t < 1e-6, torch.zeros_like(t), t)
    return t, schedule.sigma_at(t)


def consistency_table(
    schedule: NoiseSchedule,
    steps: int,
    spacing: str = "trailing",
    steps_offset: int = 0,
    use_karras_sigmas: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(float timesteps [N], sigmas [N + 1]): the ramp's levels i / N for i < N, then sigma_min,
    where the chain ends (as diffusers' CMStochasticIterativeScheduler's table does). Spacing and
    offset are the discrete samplers' words; they do not apply here."""
    sigma_min, sigma_max = sigma_range(schedule)
    t, sigmas = snap_to_schedule(schedule, karras_sigmas(sigma_min, sigma_max, steps + 1))
    return t[:-1].float(), sigmas


def sample_consistency(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    start_step: int = 0,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Song et al. 2023, Alg. 1: x0 = f(x, sigma_i), then x = x0 + sqrt(sigma_{i+1}^2 -
    sigma_min^2) z for the next level; one model call a step. `sigmas` [N + 1] ends at
    sigma_min, f's boundary, where the chain stops."""
    sigma_min = sigmas[-1]
    last = len(timesteps) - 1
    for i in tqdm(range(start_step, len(timesteps)), disable=not progress, desc="consistency"):
        x0 = denoise(x, sigmas[i], timesteps[i])
        if i < last:  # Re-noise to the next level.
            scale = (sigmas[i + 1] ** 2 - sigma_min**2).sqrt().to(x.dtype)
            x = x0 + scale * noise_like(x0, generator)
        else:
            x = x0
        x = sigma_hook(callback, i, timesteps[i], x, x0, sigmas[i + 1])
    return x
