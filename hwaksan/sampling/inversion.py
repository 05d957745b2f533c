"""DDIM inversion (x0 -> x_T along the deterministic ODE) and spherical noise interpolation."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.ddim import ddim_step
from hwaksan.sampling.denoiser import predict_x0_eps


@torch.no_grad()
def ddim_invert(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int,
    *,
    prediction_type: str = "epsilon",
    timestep_spacing: str = "leading",
    cond: dict | None = None,
    progress: bool = False,
    start_step: int = 0,
) -> torch.Tensor:
    """The x_T from which deterministic DDIM (same steps and spacing) returns x0; with
    `start_step` k, the x at timesteps[k] that `hk.sample(..., start_step=k)` starts from.

    Runs each DDIM step (Song et al. 2021, eq. 12 with eta = 0) backwards, with eps taken where
    the sampler would next evaluate it — the usual approximation (Dhariwal & Nichol 2021, eq. 55).
    """
    ts.check_steps(steps, timestep_spacing, schedule.num_train_timesteps)
    param.check_prediction_type(prediction_type)
    cond = cond or {}

    def bound(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x_t, t, **cond)

    timesteps = ts.discrete_timesteps(schedule, steps, timestep_spacing)
    prev = ts.ddim_prev_timesteps(timesteps, schedule.num_train_timesteps)
    # Where sampling step i + 1 evaluates the model; the cleanest level uses t = 0.
    eval_t = torch.cat([timesteps[1:], prev[-1:].clamp(min=0)])
    x = x0
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step must be between 0 and steps = {steps}, got {start_step}")
    todo = reversed(range(start_step, steps))
    for i in tqdm(todo, total=steps - start_step, disable=not progress, desc="ddim_invert"):
        _, eps = predict_x0_eps(bound, x, eval_t[i], schedule, prediction_type)
        # x sits at level prev[i] (alpha = 1 for the clean x0); undo step i: prev[i] -> t[i].
        a_low = schedule.alphas_cumprod_at(prev[i])
        x0_pred = param.to_x0(
            eps, x, a_low.sqrt().to(x.dtype), (1 - a_low).sqrt().to(x.dtype), "epsilon"
        )
        x = ddim_step(x0_pred, eps, schedule.alphas_cumprod_at(timesteps[i]))
    return x


def slerp(
    z0: torch.Tensor, z1: torch.Tensor, alpha: float, dot_threshold: float = 0.9995
) -> torch.Tensor:
    """Spherical interpolation between two noises (Shoemake 1985): keeps Gaussian noise typical.

    Falls back to linear interpolation when the inputs are (nearly) parallel (|cos| > threshold).
    """
    a, b = z0.double().flatten(), z1.double().flatten()
    cos = (a @ b / (a.norm() * b.norm())).item()
    if abs(cos) > dot_threshold:
        return (1 - alpha) * z0 + alpha * z1
    theta = math.acos(cos)
    w0 = math.sin((1 - alpha) * theta) / math.sin(theta)
    w1 = math.sin(alpha * theta) / math.sin(theta)
    return w0 * z0 + w1 * z1
