"""Conversions between the three things a network may predict: eps, x0 and v.

Everything here is written for x_t = alpha_t * x0 + sigma_t * eps, so it serves the
variance-preserving schedule (alpha_t = sqrt(alphas_cumprod), sigma_t = sqrt(1 - alphas_cumprod))
and sigma-space samplers alike. v = alpha_t * eps - sigma_t * x0 (Salimans & Ho 2022, eq. 8),
which for a VP schedule satisfies alpha_t^2 + sigma_t^2 = 1.
"""

from __future__ import annotations

from typing import Literal

import torch

PredictionType = Literal["epsilon", "sample", "v_prediction"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "sample", "v_prediction")


def check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"unknown prediction_type {prediction_type!r}; "
            f"choose one of {', '.join(PREDICTION_TYPES)}"
        )


def to_x0(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """The clean sample x0 implied by a network output (alpha, sigma broadcast against x_t)."""
    # addcmul(a, b, c, value=-1) = a - b * c in one pass: samplers call this every step.
    if prediction_type == "epsilon":
        return torch.addcmul(x_t, sigma, pred, value=-1).div_(alpha)  # (x_t - sigma eps) / alpha
    if prediction_type == "sample":
        return pred
    if prediction_type == "v_prediction":
        # Valid for VP schedules (alpha^2 + sigma^2 = 1).
        return torch.addcmul(alpha * x_t, sigma, pred, value=-1)  # alpha x_t - sigma v
    check_prediction_type(prediction_type)
    raise AssertionError  # unreachable


def to_eps(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """The noise eps implied by a network output."""
    if prediction_type == "epsilon":
        return pred
    if prediction_type == "sample":
        return torch.addcmul(x_t, alpha, pred, value=-1).div_(sigma)  # (x_t - alpha x0) / sigma
    if prediction_type == "v_prediction":
        return torch.addcmul(sigma * x_t, alpha, pred)  # sigma x_t + alpha v
    check_prediction_type(prediction_type)
    raise AssertionError  # unreachable


def from_x0_eps(
    x0: torch.Tensor,
    eps: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """The training target for a prediction type, given the clean sample and the noise."""
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        return alpha * eps - sigma * x0
    check_prediction_type(prediction_type)
    raise AssertionError  # unreachable


def convert(
    pred: torch.Tensor,
    x_t: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
    source: str,
    target: str,
) -> torch.Tensor:
    """Re-express a prediction of type `source` as one of type `target`."""
    if source == target:
        return pred
    x0 = to_x0(pred, x_t, alpha, sigma, source)
    eps = to_eps(pred, x_t, alpha, sigma, source)
    return from_x0_eps(x0, eps, alpha, sigma, target)
