"""A frozen model seen at variance-exploding noise levels, as the distillation recipes use it.

Each sample of a batch sits at its own level: x = x0 + sigma eps with sigma [B]; the network
sees the VP x_t = x / sqrt(1 + sigma^2) at the matching (float) timestep t [B]
(`sampling.denoiser.sigma_denoiser` does the same for one level shared by the batch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import vp_alpha_sigma

Model = Callable[..., torch.Tensor]  # model(x_t, t, **cond) -> prediction


def frozen(model: Model) -> Model:
    """The teacher, in eval mode without gradients when it is a network (any callable works)."""
    if isinstance(model, torch.nn.Module):
        model.eval().requires_grad_(False)
    return model


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values [B] as a [B, 1, 1, ...] tensor in `like`'s dtype and device."""
    shape = (-1, *([1] * (like.ndim - 1)))
    return values.reshape(shape).to(dtype=like.dtype, device=like.device)


def x0_at(
    model: Model,
    x: torch.Tensor,
    sigma: torch.Tensor,
    t: torch.Tensor,
    prediction_type: str,
    cond: dict,
) -> torch.Tensor:
    """The model's x0 estimate at x = x0 + sigma eps [B, ...], sigma and t [B]."""
    alpha, sigma_vp = vp_alpha_sigma(sigma.double())
    alpha, sigma_vp = per_sample(alpha, x), per_sample(sigma_vp, x)
    x_t = x * alpha  # (B, C, H, W) the VP input
    pred = model(x_t, t.to(device=x.device, dtype=torch.float32), **cond)
    return param.to_x0(pred, x_t, alpha, sigma_vp, prediction_type)


def ddim_step(x0: torch.Tensor, x: torch.Tensor, sigma, sigma_next) -> torch.Tensor:
    """One deterministic DDIM step (= an Euler step of the probability-flow ODE in VE terms,
    Song et al. 2021 DDIM eq. 14): x_next = x0 + (sigma_next / sigma)(x - x0); sigmas [B]."""
    ratio = per_sample(sigma_next.double() / sigma.double(), x)
    return x0 + ratio * (x - x0)


def heun_step(
    denoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    levels: tuple[torch.Tensor, torch.Tensor],
    next_levels: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Heun's step of dx/dsigma = (x - D(x, sigma)) / sigma from (t, sigma) to (t', sigma') > 0
    (Karras et al. 2022, Alg. 1), the teacher's ODE step of consistency distillation."""
    (t, sigma), (t_next, sigma_next) = levels, next_levels
    s, s_next = per_sample(sigma, x), per_sample(sigma_next, x)
    d = (x - denoise(x, sigma, t)) / s
    x_euler = x + (s_next - s) * d  # Euler step.
    d_next = (x_euler - denoise(x_euler, sigma_next, t_next)) / s_next
    return x + (s_next - s) * (d + d_next) / 2  # The second-order correction.
