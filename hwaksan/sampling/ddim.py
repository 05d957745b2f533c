"""DDIM: the non-Markovian sampler of Song, Meng & Ermon 2021 (eq. 12, with eta from eq. 16)."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.denoiser import Model, noise_like, predict_x0_eps
from hwaksan.sampling.hooks import Callback, vp_hook


def ddim_step(
    x0: torch.Tensor,
    eps: torch.Tensor,
    alpha_cumprod_next: torch.Tensor,
    std: torch.Tensor | float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_next = sqrt(a') x0 + sqrt(1 - a' - std^2) eps + std noise (Song et al. 2021, eq. 12)."""
    a = alpha_cumprod_next
    x = a.sqrt().to(x0.dtype) * x0 + (1 - a - std**2).sqrt().to(x0.dtype) * eps
    return x if noise is None else x + torch.as_tensor(std).to(x0.dtype) * noise


def sample_ddim(
    model: Model,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    eta: float = 0.0,
    prediction_type: str = "epsilon",
    clip_sample: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    start_step: int = 0,
    callback: Callback | None = None,
    set_alpha_to_one: bool = True,
) -> torch.Tensor:
    """DDIM from x at timesteps[start_step] down the given timesteps; eta = 0 is deterministic,
    eta = 1 is DDPM-like. Each step goes to t - T // N (`ddim_prev_timesteps`); below 0 the target
    is alpha = 1, or alphas_cumprod[0] with `set_alpha_to_one=False` (diffusers' flag, which
    Stable Diffusion's scheduler configs clear).
    """
    prev_timesteps = ts.ddim_prev_timesteps(timesteps, schedule.num_train_timesteps)
    if not set_alpha_to_one:
        prev_timesteps = prev_timesteps.clamp(min=0)  # the last step lands on t = 0, not alpha 1
    for i in tqdm(range(start_step, len(timesteps)), disable=not progress, desc="ddim"):
        t, t_prev = timesteps[i], prev_timesteps[i]
        x0, eps = predict_x0_eps(model, x, t, schedule, prediction_type, clip_sample)
        step = schedule.strided_posterior(t, t_prev)  # float64 scalars
        # sigma_t(eta) = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)   (eq. 16)
        std = eta * step.variance.sqrt()
        noise = None
        if eta > 0:  # drawn at every step, as diffusers does, so the noise streams agree
            noise = noise_like(x, generator)
        x = ddim_step(x0, eps, step.alpha_cumprod_prev, std, noise)
        x = vp_hook(callback, i, t, x, x0, schedule, t_prev)
    return x
