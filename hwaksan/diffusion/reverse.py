"""The reverse step p(x_{t-1} | x_t) = N(mean, variance) that a network output defines.

One function, `p_mean_variance`, serves the DDPM sampler and the variational bound alike: the
mean is the posterior mean q(x_{s} | x_t, x0_pred) (Ho et al. 2020, eq. 7) at the network's x0
prediction, the variance is fixed or learned (Nichol & Dhariwal 2021, eq. 15).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from hwaksan.diffusion.schedule import NoiseSchedule

VARIANCE_TYPES: tuple[str, ...] = ("fixed_small", "fixed_large", "learned_range", "learned_log")


class ReverseStep(NamedTuple):
    """p(x_{t-1} | x_t) = N(mean, variance); variances broadcast against mean."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    x0_pred: torch.Tensor


def check_variance_type(variance_type: str) -> None:
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(
            f"unknown variance_type {variance_type!r}; choose one of {', '.join(VARIANCE_TYPES)}"
        )


def split_variance(
    model_out: torch.Tensor, variance_type: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(prediction, variance channels): a learned-variance network outputs 2C channels on dim 1."""
    if variance_type in ("learned_range", "learned_log"):
        pred, var_values = model_out.chunk(2, dim=1)
        return pred, var_values
    return model_out, None


def p_mean_variance(
    model_out: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str = "epsilon",
    variance_type: str = "fixed_small",
    *,
    prev_t: torch.Tensor | None = None,
    clip_sample: float | None = None,
) -> ReverseStep:
    """Mean and variance of p(x_{prev_t} | x_t) from a network output (prev_t defaults to t - 1).

    variance_type: "fixed_small" = posterior variance (Ho et al. 2020's sigma^2 = beta-tilde);
    "fixed_large" = beta_t, with the posterior variance at t=1 used at t=0 (improved-diffusion);
    "learned_range" = the last C output channels v in [-1, 1] give
    log var = f log beta + (1 - f) log beta-tilde, f = (v + 1) / 2 (Nichol & Dhariwal 2021, eq. 15);
    "learned_log" = the last C channels are the log variance itself (improved-diffusion's LEARNED;
    diffusers' "learned" reads them as the variance, hence the distinct name).
    At the last step (prev_t < 0) the fixed variances take the clipped value (the posterior
    variance at t=1); a sampler adds no noise there.
    """
    check_variance_type(variance_type)
    t = torch.as_tensor(t, device=x_t.device).long().reshape(-1)
    prev_t = (
        t - 1 if prev_t is None else torch.as_tensor(prev_t, device=x_t.device).long().reshape(-1)
    )
    pred, var_values = split_variance(model_out, variance_type)
    step = schedule.strided_posterior(t, prev_t, like=x_t)  # float64 [B, 1, ...]
    beta, post_var, post_log_var = step.beta, step.variance, step.log_variance

    # Mean: the posterior mean at the predicted x0 (Ho et al. 2020, eq. 7).
    x0_pred = schedule.predict_x0(pred, x_t, t, prediction_type)
    if clip_sample:
        x0_pred = x0_pred.clamp(-clip_sample, clip_sample)
    coef_x0, coef_xt = step.coef_x0.to(x_t.dtype), step.coef_xt.to(x_t.dtype)
    mean = torch.addcmul(coef_xt * x_t, coef_x0, x0_pred)  # one temporary fewer

    # Variance, in log space (float64 tables cast at use). Fixed variances stay [B, 1, ...]
    # so exp() runs once per example, not per element; they broadcast against x_t.
    if variance_type == "fixed_small":
        log_var = post_log_var.to(x_t.dtype)
    elif variance_type == "fixed_large":
        log_var = torch.where(post_var > 0, beta.log(), post_log_var).to(x_t.dtype)
    elif variance_type == "learned_range":
        frac = (var_values + 1) / 2
        log_var = frac * beta.log().to(x_t.dtype) + (1 - frac) * post_log_var.to(x_t.dtype)
    else:  # "learned_log"
        log_var = var_values
    return ReverseStep(mean, log_var.exp(), log_var, x0_pred)
