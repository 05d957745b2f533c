"""`hk.sample`: one entry point for every sampler, with diffusers' words and trajectories."""

from __future__ import annotations

from collections.abc import Callable

import torch

from hwaksan.diffusion.parameterization import check_prediction_type
from hwaksan.diffusion.reverse import check_variance_type
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.ddim import sample_ddim
from hwaksan.sampling.ddpm import sample_ddpm
from hwaksan.sampling.denoiser import sigma_denoiser
from hwaksan.sampling.dpm_solver import sample_dpmpp_2m
from hwaksan.sampling.euler import sample_euler, sample_heun

SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", "dpmpp_2m", "euler", "heun")
_SIGMA_SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m}


def check_sample_args(
    sampler: str,
    steps: int,
    spacing: str,
    schedule: NoiseSchedule,
    *,
    eta: float = 0.0,
    prediction_type: str = "epsilon",
    variance_type: str = "fixed_small",
    use_karras_sigmas: bool = False,
) -> None:
    """One clear ValueError for any argument the samplers cannot honour."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    ts.check_steps(steps, spacing, schedule.num_train_timesteps)
    check_prediction_type(prediction_type)
    check_variance_type(variance_type)
    if use_karras_sigmas and sampler not in _SIGMA_SAMPLERS:
        raise ValueError(f"use_karras_sigmas needs euler, heun or dpmpp_2m, not {sampler!r}")
    if eta != 0 and sampler != "ddim":
        raise ValueError(f"eta is a DDIM option; sampler {sampler!r} does not use it")


def _initial_noise(
    shape: tuple[int, ...], x_T: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    if x_T is None:
        device = generator.device if generator is not None else "cpu"
        return torch.randn(shape, generator=generator, device=device)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape is {tuple(shape)}")
    return x_T


@torch.no_grad()
def sample(
    model: Callable[..., torch.Tensor],
    shape: tuple[int, ...],
    *,
    schedule: NoiseSchedule,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    prediction_type: str = "epsilon",
    timestep_spacing: str = "leading",
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    clip_sample: float | None = None,
    cond: dict | None = None,
    progress: bool = False,
    use_karras_sigmas: bool = False,
    variance_type: str = "fixed_small",
    steps_offset: int = 0,
) -> torch.Tensor:
    """Draw x0 of `shape` by running `sampler` from x_T (standard normal) for `steps` steps.

    `model(x_t, t, **cond)` gets t of shape [B]: int64 for ddpm/ddim/dpmpp_2m, float32 for
    euler/heun (fractional with Karras sigmas). Same settings, same x_T -> same result as
    diffusers' DDPM/DDIM/DPMSolverMultistep/EulerDiscrete/HeunDiscrete schedulers.
    """
    options = dict(
        prediction_type=prediction_type, variance_type=variance_type,
        use_karras_sigmas=use_karras_sigmas, eta=eta,
    )  # fmt: skip
    check_sample_args(sampler, steps, timestep_spacing, schedule, **options)
    cond = cond or {}

    def bound(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x_t, t, **cond)

    x = _initial_noise(shape, x_T, generator)
    T = schedule.num_train_timesteps
    common = dict(prediction_type=prediction_type, clip_sample=clip_sample, progress=progress)
    if sampler in ("ddpm", "ddim"):
        timesteps = ts.discrete_timesteps(schedule, steps, timestep_spacing, steps_offset)
        if sampler == "ddpm":
            return sample_ddpm(
                bound,
                x,
                timesteps,
                schedule,
                variance_type=variance_type,
                generator=generator,
                **common,
            )
        prev = ts.ddim_prev_timesteps(timesteps, T)
        return sample_ddim(
            bound, x, timesteps, prev, schedule, eta=eta, generator=generator, **common
        )

    tables = ts.dpm_sigmas if sampler == "dpmpp_2m" else ts.euler_sigmas
    timesteps, sigmas = tables(schedule, steps, timestep_spacing, steps_offset, use_karras_sigmas)
    x = x * init_noise_sigma(sampler, sigmas, timestep_spacing).to(x.dtype)
    denoise = sigma_denoiser(bound, prediction_type, clip_sample)
    return _SIGMA_SAMPLERS[sampler](denoise, x, sigmas, timesteps, progress=progress)


def init_noise_sigma(sampler: str, sigmas: torch.Tensor, spacing: str) -> torch.Tensor:
    """How a sigma-space sampler scales standard-normal x_T, as diffusers' `init_noise_sigma`.

    Exactly sqrt(1 + sigma_max^2) moves VP noise to sigma_max; diffusers' Euler/Heun use
    sigma_max alone for "linspace"/"trailing" (a 1e-5 relative difference we keep, for parity).
    """
    sigma_max = sigmas.max()
    if sampler in ("euler", "heun") and spacing in ("linspace", "trailing"):
        return sigma_max
    return (1 + sigma_max**2).sqrt()
