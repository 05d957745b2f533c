"""The math of few-step distillation, written once: consistency models' boundary scalings, losses
and curriculum (Song et al. 2023; Song & Dhariwal 2023), progressive distillation's target and
weight (Salimans & Ho 2022).

Noise levels are variance-exploding sigmas, x = x0 + sigma eps (Karras et al. 2022); a VP
x_t = alpha x0 + sigma_vp eps is x / sqrt(1 + sigma^2).
"""

from __future__ import annotations

import math

import torch

SIGMA_MAX = 80.0  # the top of a consistency model's noise levels (Song et al. 2023, sec. 5)
RHO = 7.0  # Karras et al. 2022's spacing of sigma^(1 / rho)


def consistency_scalings(
    sigma: torch.Tensor, sigma_min: float, sigma_data: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip, c_out) of f(x, sigma) = c_skip x + c_out F(x, sigma) (Song et al. 2023, app. C):
    c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2), c_out = (sigma - sigma_min) sd /
    sqrt(sd^2 + sigma^2). At sigma_min exactly 1 and 0, so f(x, sigma_min) = x."""
    shifted = sigma - sigma_min
    c_skip = sigma_data**2 / (shifted**2 + sigma_data**2)
    c_out = shifted * sigma_data / (sigma_data**2 + sigma**2).sqrt()
    return c_skip, c_out


def pseudo_huber(pred: torch.Tensor, target: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """Per-sample sqrt(||pred - target||^2 + c^2) - c [B], with c = 0.00054 sqrt(d) for d
    dimensions (Song & Dhariwal 2023, sec. 3.3): L2-like near 0, L1-like far from it."""
    diff = (pred - target).flatten(1).float()  # (B, d)
    c = 0.00054 * math.sqrt(diff.shape[1]) if c is None else c
    return (diff.square().sum(1) + c**2).sqrt() - c


def ct_discretization(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k), the number of noise levels at training step k of consistency training: doubling
    from s0 + 1 to s1 + 1 in equal stages (Song & Dhariwal 2023, eq. 9)."""
    stage = max(1, total_steps // (int(math.log2(s1 // s0)) + 1))
    return min(s0 * 2 ** (step // stage), s1) + 1


def lognormal_level_probs(
    sigmas: torch.Tensor, p_mean: float = -1.1, p_std: float = 2.0
) -> torch.Tensor:
    """p(i) for the pair (sigma_i, sigma_{i+1}) of ascending `sigmas` [N]: the lognormal mass
    between them, normalised [N - 1] (Song & Dhariwal 2023, sec. 3.5)."""
    cdf = torch.erf((sigmas.double().log() - p_mean) / (math.sqrt(2) * p_std))
    mass = cdf[1:] - cdf[:-1]
    return mass / mass.sum()


def ct_weight(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i) (Song & Dhariwal 2023, sec. 3.1)."""
    return 1 / (sigma_next - sigma)


def progressive_target(
    x: torch.Tensor, x_next: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> torch.Tensor:
    """The x0 whose one deterministic (DDIM) step takes x at sigma to x_next at sigma_next: the
    student's target (Salimans & Ho 2022, Alg. 2, in VE terms). A DDIM step is
    x_next = x0 + (sigma_next / sigma)(x - x0); solved for x0. sigma_next = 0 gives x_next."""
    ratio = sigma_next / sigma
    return (x_next - ratio * x) / (1 - ratio)


def truncated_snr_weight(sigma: torch.Tensor) -> torch.Tensor:
    """max(SNR, 1) = max(1 / sigma^2, 1), the loss weight on x (Salimans & Ho 2022, sec. 4)."""
    return sigma.pow(-2).clamp(min=1.0)
