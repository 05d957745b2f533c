"""Classifier-free guidance as a wrapper: one model callable in, a guided one out.

One network trained with condition dropout predicts both p(x | y) and p(x) (the null class, an
empty prompt); sampling mixes the two predictions (Ho & Salimans 2022, eq. 6). The wrapper knows
nothing of the sampler, the prediction type or where `cond` came from (class labels, text).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def classifier_free_guidance(
    model: Callable[..., torch.Tensor], guidance_scale: float, uncond: dict[str, torch.Tensor]
) -> Callable[..., torch.Tensor]:
    """pred_uncond + w * (pred_cond - pred_uncond) (Ho & Salimans 2022, eq. 6), both halves in one
    batched forward. `uncond` holds the unconditional inputs per image (null class, empty or
    negative prompt) under the same keys as the sampler's `cond`; guidance is linear in the
    prediction, so it is the same for eps, x0 and v targets.

    w = 0 is the unconditional model and w = 1 the conditional one, each in a single forward of
    its own half (exactly that model's output, at half the cost). A value of `cond` may be a
    dict of per-image tensors (`cross_attention_kwargs`: IP-Adapter's image tokens).
    """

    def guided(x: torch.Tensor, t: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
        if guidance_scale == 0:
            return model(x, t, **{**cond, **uncond})
        if guidance_scale == 1:
            return model(x, t, **cond)
        both = {k: _cat(cond[k], uncond[k]) for k in cond}  # (2B, ...) each
        pred_cond, pred_uncond = model(torch.cat([x, x]), torch.cat([t, t]), **both).chunk(2)
        return pred_uncond + guidance_scale * (pred_cond - pred_uncond)

    return guided


def _cat(cond, uncond):
    """cond's rows, then uncond's: tensors, or dicts of them key by key."""
    if isinstance(cond, dict):
        return {k: _cat(cond[k], uncond[k]) for k in cond}
    return torch.cat([cond, uncond])
