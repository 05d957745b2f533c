"""Classifier guidance as a wrapper: a model callable and a noise-aware classifier p(y | x_t, t)
in, a model that samples p(x_t) p(y | x_t)^s out (Dhariwal & Nichol 2021, sec. 4).

Two forms, both written as a change of the network's prediction so no sampler is edited:
- eps form (their Alg. 2, for DDIM and every deterministic sampler):
  eps' = eps - sqrt(1 - alphas_cumprod_t) * s * grad log p(y | x_t);
- mean-shift form (their Alg. 1, for ancestral DDPM): mu' = mu + s * Sigma * grad log p(y | x_t),
  made by moving the x0 prediction the DDPM step reads by s * Sigma * grad / coef_x0.
Predictions of x0 or v are converted to eps / x0 and back (`hwaksan.diffusion.parameterization`).
The base model may be conditional (its `cond` passes through) or unconditional.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule


def class_log_prob_grad(
    classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_t: torch.Tensor,
    t: torch.Tensor,
    class_labels: torch.Tensor,
) -> torch.Tensor:
    """grad_x log p(y | x_t, t) for each example's label, shaped and typed like x_t."""
    with torch.enable_grad():
        x_in = x_t.detach().requires_grad_(True)
        logits = classifier(x_in, t)  # (B, num_classes)
        log_probs = logits.log_softmax(-1, dtype=torch.promote_types(logits.dtype, torch.float32))
        chosen = log_probs.gather(1, class_labels.long().reshape(-1, 1).to(x_t.device)).sum()
        (grad,) = torch.autograd.grad(chosen, x_in)
    return grad.to(x_t.dtype)


def classifier_guidance(
    model: Callable[..., torch.Tensor],
    classifier: nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    classifier_scale: float,
    class_labels: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    prediction_type: str = "epsilon",
    ddpm_timesteps: torch.Tensor | None = None,
    variance_type: str = "fixed_small",
) -> Callable[..., torch.Tensor]:
    """`model` guided toward `class_labels` [B] by `classifier(x_t, t) -> logits`.

    The eps form by default; with `ddpm_timesteps` (the descending timesteps an ancestral DDPM
    sampler visits, with its `variance_type`) the mean-shift form. Scale 0 returns `model` itself.
    """
    if classifier_scale == 0:
        return model
    if ddpm_timesteps is not None:
        shift = _ddpm_x0_shift(schedule, ddpm_timesteps, variance_type)

    def guided(x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        pred = model(x, t, **cond)
        grad = class_log_prob_grad(classifier, x, t, class_labels)
        alpha, sigma = schedule.alpha_sigma_at(t, x)
        if ddpm_timesteps is None:  # eps' = eps - sigma_t s grad  (Alg. 2)
            eps = param.to_eps(pred, x, alpha, sigma, prediction_type)
            eps = eps - sigma * classifier_scale * grad
            return param.convert(eps, x, alpha, sigma, "epsilon", prediction_type)
        # mu' = mu + s Sigma grad (Alg. 1), as x0' = x0 + s (Sigma / coef_x0) grad
        x0 = param.to_x0(pred, x, alpha, sigma, prediction_type)
        x0 = x0 + classifier_scale * shift(t, x) * grad
        return param.convert(x0, x, alpha, sigma, "sample", prediction_type)

    return guided


def _ddpm_x0_shift(
    schedule: NoiseSchedule, timesteps: torch.Tensor, variance_type: str
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Sigma / coef_x0 of the DDPM step from each t to the next visited timestep s, where the step
    mean is coef_xt x_t + coef_x0 x0 (`NoiseSchedule.strided_posterior`, Ho et al. 2020, eq. 7)."""
    if variance_type not in ("fixed_small", "fixed_large"):
        raise ValueError(f"the mean-shift form needs a fixed variance, not {variance_type!r}")
    timesteps = torch.as_tensor(timesteps).long().cpu()
    prev = dict(zip(timesteps.tolist(), timesteps[1:].tolist() + [-1]))

    def shift(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        t = t.detach().reshape(-1).long().cpu()
        step = schedule.strided_posterior(t, torch.tensor([prev[int(i)] for i in t]))  # [B]
        var = step.variance if variance_type == "fixed_small" else step.beta.clone()
        last = step.variance <= 0  # the last step: `p_mean_variance` takes the clipped value
        var[last] = step.log_variance[last].exp()
        ratio = var / step.coef_x0
        return ratio.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype).to(like.device)

    return shift
