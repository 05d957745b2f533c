"""Starting part-way down a sampler's steps: img2img / SDEdit (Meng et al. 2022), Imagic,
inpainting. Which levels a sampler visits, diffusers' `strength` as a start step, and an image
noised to the level `hk.sample(..., start_step=k)` starts from.
"""

from __future__ import annotations

import torch

from hwaksan.diffusion.schedule import NoiseSchedule, vp_alpha_sigma
from hwaksan.sampling.registry import sampler_spec


def timesteps_for(
    sampler: str,
    schedule: NoiseSchedule,
    steps: int,
    spacing: str = "leading",
    steps_offset: int = 0,
    use_karras_sigmas: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(timesteps [N], sigmas [N + 1] or None for VP samplers) that `hk.sample` visits with the
    same settings; timesteps[k] is where `start_step=k` begins."""
    table = sampler_spec(sampler).table
    return table(schedule, steps, spacing, steps_offset, use_karras_sigmas)


def start_step_for_strength(steps: int, strength: float) -> int:
    """diffusers' img2img rule: of `steps`, run the last int(steps * strength) (strength 1: all).

    `StableDiffusionImg2ImgPipeline.get_timesteps`: start_step = steps - int(steps * strength).
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    run = min(int(steps * strength), steps)
    if run == 0:
        raise ValueError(f"strength {strength} leaves none of the {steps} steps to run")
    return steps - run


def noise_to_start(
    x0: torch.Tensor,
    noise: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    sampler: str = "ddim",
    steps: int = 50,
    start_step: int = 0,
    timestep_spacing: str = "leading",
    steps_offset: int = 0,
    use_karras_sigmas: bool = False,
) -> torch.Tensor:
    """x0 noised to the level step `start_step` reads, alpha x0 + sigma noise (VP): the `x_T` for
    `hk.sample(..., start_step=start_step)` with the same settings (diffusers' `add_noise`)."""
    timesteps, sigmas = timesteps_for(
        sampler, schedule, steps, timestep_spacing, steps_offset, use_karras_sigmas
    )
    if sigmas is None:  # an integer timestep of the schedule
        t = timesteps[start_step].expand(x0.shape[0])  # [B]
        return schedule.add_noise(x0, noise, t)
    # A sigma sampler's level need not be a table entry: x0 + sigma noise, seen as VP.
    alpha, sigma = vp_alpha_sigma(sigmas[start_step].double())
    return alpha.to(x0.dtype) * x0 + sigma.to(x0.dtype) * noise
