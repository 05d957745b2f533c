"""DPM-Solver++(2M): the multistep second-order data-prediction solver (Lu et al. 2022, Alg. 2).

Written in the variance-exploding view x = x0 + sigma eps, where the log-SNR is
lambda = -log(sigma); it equals diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2,
midpoint, lower_order_final, final sigma zero) step for step.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from hwaksan.sampling.denoiser import Denoiser
from hwaksan.sampling.hooks import Callback, sigma_hook


def sample_dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    progress: bool = False,
    start_step: int = 0,
    callback: Callback | None = None,
) -> torch.Tensor:
    """One model call per step; first order on the first step and on the last (to sigma = 0).

    Started part-way (`start_step`), the first step is first order too, as diffusers' img2img.
    """
    old_denoised = None
    for i in tqdm(range(start_step, len(timesteps)), disable=not progress, desc="dpmpp_2m"):
        denoised = denoise(x, sigmas[i], timesteps[i])
        if sigmas[i + 1] == 0:
            x = denoised  # the first-order step to sigma = 0 lands on the x0 prediction
        else:
            h = (sigmas[i].log() - sigmas[i + 1].log()).item()  # lambda_next - lambda_now
            if old_denoised is None:
                d = denoised  # first order: DPM-Solver++(1), i.e. DDIM
            else:
                # Second order: extrapolate x0 linearly in lambda from the last two predictions.
                r = (sigmas[i - 1].log() - sigmas[i].log()).item() / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            # x_next = (sigma_next / sigma) x - (e^{-h} - 1) D   (Lu et al. 2022, eq. 14 / Alg. 2)
            x = (sigmas[i + 1] / sigmas[i]).item() * x - math.expm1(-h) * d
            old_denoised = denoised
        x = sigma_hook(callback, i, timesteps[i], x, denoised, sigmas[i + 1])
    return x
