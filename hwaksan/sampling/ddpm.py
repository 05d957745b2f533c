"""DDPM ancestral sampling (Ho et al. 2020, Alg. 2), on all T steps or a strided subset."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from hwaksan.diffusion.reverse import p_mean_variance
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling.denoiser import Model, batch_timestep, noise_like
from hwaksan.sampling.hooks import Callback, vp_hook


def sample_ddpm(
    model: Model,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    prediction_type: str = "epsilon",
    variance_type: str = "fixed_small",
    clip_sample: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    start_step: int = 0,
    callback: Callback | None = None,
) -> torch.Tensor:
    """x_{s} ~ N(mean, variance) from each timestep t to the next one s (the strided posterior),
    starting from x at timesteps[start_step].

    The last step returns the mean (z = 0 at t = 1 in Alg. 2). variance_type: "fixed_small"
    (posterior variance), "fixed_large" (beta), or the learned ones of `p_mean_variance`.
    """
    prev_timesteps = torch.cat([timesteps[1:], timesteps.new_full((1,), -1)])
    for i in tqdm(range(start_step, len(timesteps)), disable=not progress, desc="ddpm"):
        t, t_prev = timesteps[i], prev_timesteps[i]
        t_batch, prev_batch = batch_timestep(t, x), batch_timestep(t_prev, x)
        out = model(x, t_batch)
        step = p_mean_variance(
            out, x, t_batch, schedule, prediction_type, variance_type,
            prev_t=prev_batch, clip_sample=clip_sample,
        )  # fmt: skip
        x = step.mean
        if i < len(timesteps) - 1:
            # Ancestral step: add the reverse process's own noise.
            x = x.addcmul_(step.variance.sqrt(), noise_like(x, generator))  # x is step's own
        x = vp_hook(callback, i, t, x, step.x0_pred, schedule, t_prev)
    return x
