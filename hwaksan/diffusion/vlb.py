"""The terms of the variational bound on -log p(x0), in bits per dimension.

-log p(x0) <= L_T + sum_{t>1} L_{t-1} + L_0  (Ho et al. 2020, eq. 5):
L_T = KL(q(x_T | x0) || N(0, I)), L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),
L_0 = -log p(x0 | x1). Our index t counts from 0, so "t = 0" is the decoder term L_0.
"""

from __future__ import annotations

import math

import torch

from hwaksan.diffusion.gaussian import (
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    normal_kl,
)
from hwaksan.diffusion.reverse import p_mean_variance
from hwaksan.diffusion.schedule import NoiseSchedule, _gather

_LN2 = math.log(2.0)


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the batch: [B, ...] -> [B]."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def vlb_terms(
    model_out: torch.Tensor,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
    schedule: NoiseSchedule,
    prediction_type: str = "epsilon",
    variance_type: str = "fixed_large",
    discrete: bool = True,
) -> torch.Tensor:
    """L_{t-1} for t > 0 and L_0 for t = 0, per example in bits/dim: [B].

    L_0 is the discretized Gaussian decoder for 8-bit data (Ho et al. 2020, eq. 13) when
    `discrete`, else the continuous density -log N(x0; mean, var) (can be negative).
    """
    t = torch.as_tensor(t, device=x_t.device).long().reshape(-1)
    true_mean, _, true_log_var = schedule.posterior(x0, x_t, t)
    p = p_mean_variance(model_out, x_t, t, schedule, prediction_type, variance_type)
    kl = mean_flat(normal_kl(true_mean, true_log_var, p.mean, p.log_variance)) / _LN2
    if not bool((t == 0).any()):
        return kl
    log_likelihood = discretized_gaussian_log_likelihood if discrete else gaussian_log_likelihood
    decoder_nll = -mean_flat(log_likelihood(x0, p.mean, 0.5 * p.log_variance)) / _LN2
    return torch.where(t == 0, decoder_nll, kl)


def prior_bpd(x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """L_T = KL(q(x_T | x0) || N(0, I)) per example in bits/dim: [B]; no network involved."""
    t = torch.full((x0.shape[0],), len(schedule) - 1, dtype=torch.long, device=x0.device)
    alpha, _ = schedule.alpha_sigma(t, x0)
    log_var = _gather(torch.log1p(-schedule.alphas_cumprod), t, x0)
    zero = torch.zeros_like(x0)
    return mean_flat(normal_kl(alpha * x0, log_var.expand_as(x0), zero, zero)) / _LN2
