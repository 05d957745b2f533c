"""Training losses: tiny callables: sample t and noise, noise x0, call the model, weigh the error.

`diffusion_loss` is L_simple (Ho et al. 2020, eq. 14) with an optional min-SNR-gamma weight
(Hang et al. 2023); `hybrid_loss` adds the variational bound for a learned variance
(Nichol & Dhariwal 2021, eq. 16).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hwaksan.diffusion.reverse import split_variance
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.diffusion.vlb import mean_flat, vlb_terms

Model = Callable[..., torch.Tensor]


def sample_forward(
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t, noise, x_t): t ~ U{0..T-1} and noise ~ N(0, I) unless given, x_t ~ q(x_t | x0)."""
    device = generator.device if generator is not None else x0.device
    if t is None:
        t = torch.randint(0, len(schedule), (x0.shape[0],), generator=generator, device=device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    t, noise = t.to(x0.device), noise.to(x0.device)
    return t, noise, schedule.add_noise(x0, noise, t)


def min_snr_weight(snr: torch.Tensor, snr_gamma: float, prediction_type: str) -> torch.Tensor:
    """min(SNR, gamma) as a weight on the x0 error, re-expressed for the error actually computed.

    Hang et al. 2023: the eps error is SNR times the x0 error and the v error (SNR + 1) times,
    so the weights are min(SNR, gamma) / SNR, min(SNR, gamma) / (SNR + 1) and min(SNR, gamma)
    (as diffusers' training scripts do). At SNR = 0 the eps weight takes its limit, 1.
    """
    clipped = snr.clamp(max=snr_gamma)
    if prediction_type == "epsilon":
        return torch.where(snr > 0, clipped / snr.clamp(min=1e-20), torch.ones_like(snr))
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "none":
        return loss
    raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'none'")


def diffusion_loss(
    model: Model,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    prediction_type: str = "epsilon",
    snr_gamma: float | None = None,
    cond: dict | None = None,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """L_simple = || target - model(x_t, t) ||^2 (Ho et al. 2020, eq. 14), target eps, x0 or v.

    Returns the mean, or with reduction="none" the per-example losses [B].
    """
    t, noise, x_t = sample_forward(x0, schedule, generator, t, noise)
    pred = model(x_t, t, **(cond or {}))
    loss = mean_flat((pred - schedule.target(x0, noise, t, prediction_type)) ** 2)
    if snr_gamma is not None:
        snr = schedule.snr(t.cpu()).to(device=loss.device, dtype=loss.dtype)
        loss = loss * min_snr_weight(snr, snr_gamma, prediction_type)
    return _reduce(loss, reduction)


def hybrid_loss(
    model: Model,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    prediction_type: str = "epsilon",
    variance_type: str = "learned_range",
    vlb_weight: float = 1e-3,
    discrete: bool = True,
    cond: dict | None = None,
    generator: torch.Generator | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """L_hybrid = L_simple + vlb_weight * L_vlb for a model with 2C output channels (Nichol &
    Dhariwal 2021, eq. 16); L_vlb = T * L_t at the sampled t, in bits/dim, and it sees the mean
    through a stop-gradient so only the variance learns from it.
    """
    t, noise, x_t = sample_forward(x0, schedule, generator, t, noise)
    pred, var_values = split_variance(model(x_t, t, **(cond or {})), variance_type)
    mse = mean_flat((pred - schedule.target(x0, noise, t, prediction_type)) ** 2)
    frozen = torch.cat([pred.detach(), var_values], dim=1)
    vlb = vlb_terms(frozen, x0, x_t, t, schedule, prediction_type, variance_type, discrete)
    return _reduce(mse + vlb_weight * len(schedule) * vlb, reduction)
