"""Model wrappers shared by the samplers: a network's prediction turned into x0 (and eps).

The conversions themselves live in `hwaksan.diffusion.parameterization`; this file only says at
which noise level they are taken (a schedule timestep, or a sigma that may fall between them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule, vp_alpha_sigma

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # model(x_t, t) -> prediction
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def mean_prediction(
    model: Callable[..., torch.Tensor], channels: int
) -> Callable[..., torch.Tensor]:
    """The model as a sampler sees it: the first `channels` output channels, dropping the
    variance half of a learned-variance network (Nichol & Dhariwal 2021)."""

    def mean_only(x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        return model(x, t, **cond)[:, :channels]

    return mean_only


def clip_x0(x0: torch.Tensor, clip_sample: float | None) -> torch.Tensor:
    """Clamp an x0 prediction to [-c, c] (diffusers' clip_sample_range); None or 0 = off."""
    return x0.clamp(-clip_sample, clip_sample) if clip_sample else x0


def batch_timestep(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One timestep repeated for every sample of the batch: shape [B], on x's device."""
    return t.to(x.device).reshape(()).expand(x.shape[0])


def predict_x0_eps(
    model: Model,
    x_t: torch.Tensor,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str,
    clip_sample: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) from one model call at integer timestep t; only x0 is clipped, as in diffusers."""
    t_batch = batch_timestep(t, x_t)
    pred = model(x_t, t_batch)
    x0 = schedule.predict_x0(pred, x_t, t_batch, prediction_type)
    eps = schedule.predict_eps(pred, x_t, t_batch, prediction_type)
    return clip_x0(x0, clip_sample), eps


def sigma_denoiser(
    model: Model, prediction_type: str, clip_sample: float | None = None
) -> Denoiser:
    """D(x, sigma, t) -> x0 for x = x0 + sigma eps, the variance-exploding view (Karras 2022).

    The network sees the variance-preserving x_t = x / sqrt(1 + sigma^2) (diffusers'
    `scale_model_input`) at timestep t; its prediction is read at that same sigma.
    """

    def denoise(x: torch.Tensor, sigma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha = vp_alpha_sigma(sigma.double())[0].to(x.dtype)  # VP signal scale
        x_t = x * alpha
        pred = model(x_t, batch_timestep(t, x))
        x0 = param.to_x0(pred, x_t, alpha, sigma.to(x.dtype) * alpha, prediction_type)
        return clip_x0(x0, clip_sample)

    return denoise


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn on the generator's device (as diffusers does)."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
