"""Euler and Heun ODE solvers in sigma space (Karras et al. 2022, Alg. 1 without churn).

x is in the variance-exploding view x = x0 + sigma eps; the probability-flow ODE is
dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, eq. 3 with sigma(t) = t).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from hwaksan.sampling.denoiser import Denoiser
from hwaksan.sampling.hooks import Callback, sigma_hook


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, eq. 3)."""
    return (x - denoised) / sigma.to(x.dtype)


def sample_euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    progress: bool = False,
    start_step: int = 0,
    callback: Callback | None = None,
) -> torch.Tensor:
    """First-order Euler steps from sigmas[start_step] to sigmas[-1] = 0, one model call each."""
    for i in tqdm(range(start_step, len(timesteps)), disable=not progress, desc="euler"):
        denoised = denoise(x, sigmas[i], timesteps[i])
        d = to_d(x, sigmas[i], denoised)
        # Euler step.
        x = x + d * (sigmas[i + 1] - sigmas[i]).to(x.dtype)
        x = sigma_hook(callback, i, timesteps[i], x, denoised, sigmas[i + 1])
    return x


def sample_heun(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    progress: bool = False,
    start_step: int = 0,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Heun's second-order method (Karras et al. 2022, Alg. 1): 2N - 1 model calls for N steps."""
    for i in tqdm(range(start_step, len(timesteps)), disable=not progress, desc="heun"):
        denoised = denoise(x, sigmas[i], timesteps[i])
        d = to_d(x, sigmas[i], denoised)
        dt = (sigmas[i + 1] - sigmas[i]).to(x.dtype)
        x_euler = x + d * dt  # Euler step.
        if sigmas[i + 1] == 0:
            x = x_euler  # the last step to sigma = 0 stays first order
        else:
            # Apply the second-order correction: average the slopes at both ends.
            d_next = to_d(x_euler, sigmas[i + 1], denoise(x_euler, sigmas[i + 1], timesteps[i + 1]))
            x = x + (d + d_next) / 2 * dt
        x = sigma_hook(callback, i, timesteps[i], x, denoised, sigmas[i + 1])
    return x
