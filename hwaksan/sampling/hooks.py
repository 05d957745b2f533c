"""Sampler hooks: what a per-step callback sees, and how each sampler hands it every step.

After every step a sampler passes a `SamplerStep` to the callback; a tensor the callback returns
replaces x (RePaint-style inpainting re-noises the known region, Lugmayr et al. 2022; step
previews; progress in a web page). k-diffusion's `callback`, diffusers' `callback_on_step_end`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hwaksan.diffusion.schedule import NoiseSchedule, vp_alpha_sigma


@dataclass(frozen=True)
class SamplerStep:
    """One finished step. x is variance-preserving, x = alpha x0 + sigma eps (as `add_noise`),
    whatever space the sampler steps in; (alpha, sigma) is (1, 0) once x is clean (after the last
    step, except where diffusers' DDIM ends at t = 0 for non-"leading" spacings)."""

    index: int  # the step's place in the full schedule, 0-based (start_step counts too)
    timestep: torch.Tensor  # the timestep the model was called at
    x: torch.Tensor  # the new sample, at the noise level (alpha, sigma)
    denoised: torch.Tensor  # this step's x0 prediction
    alpha: torch.Tensor  # float64 scalar
    sigma: torch.Tensor  # float64 scalar


Callback = Callable[[SamplerStep], "torch.Tensor | None"]


def vp_hook(
    callback: Callback | None,
    index: int,
    timestep: torch.Tensor,
    x: torch.Tensor,
    denoised: torch.Tensor,
    schedule: NoiseSchedule,
    prev_timestep: torch.Tensor,
) -> torch.Tensor:
    """x once `callback` saw a VP sampler's step that landed at `prev_timestep` (< 0: clean)."""
    if callback is None:
        return x
    a = schedule.alphas_cumprod_at(prev_timestep)
    out = callback(SamplerStep(index, timestep, x, denoised, a.sqrt(), (1 - a).sqrt()))
    return x if out is None else out


def sigma_hook(
    callback: Callback | None,
    index: int,
    timestep: torch.Tensor,
    x: torch.Tensor,
    denoised: torch.Tensor,
    sigma: torch.Tensor,
) -> torch.Tensor:
    """The same for a sigma-space step that landed at x = x0 + sigma eps: the callback sees the VP
    x / sqrt(1 + sigma^2), and a tensor it returns is scaled back."""
    if callback is None:
        return x
    alpha, sigma_vp = vp_alpha_sigma(sigma.double())  # VP scales of that level
    scale = alpha.to(x.dtype)
    out = callback(SamplerStep(index, timestep, x * scale, denoised, alpha, sigma_vp))
    return x if out is None else out / scale
