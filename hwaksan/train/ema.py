"""Exponential moving average of a model's weights, with the decay warm-up of Karras/ADM codebases.

decay_t = min(decay, (1 + step) / (10 + step)): early on the average follows the model closely,
so a short run's EMA is not stuck near the random init (as in diffusers' `EMAModel`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """The decay used at optimizer step `step` (0-based): min(decay, (1 + step) / (10 + step))."""
    return min(decay, (1 + step) / (10 + step))


class EMA:
    """A frozen copy of `model` whose parameters track an exponential moving average."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """ema <- d * ema + (1 - d) * model for parameters; buffers are copied as they are."""
        d = ema_decay_at(step, self.decay)
        ema_params = list(self.model.parameters())
        params = [p.detach().to(e.dtype) for p, e in zip(model.parameters(), ema_params)]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    @contextlib.contextmanager
    def swapped_into(self, module: nn.Module) -> Iterator[nn.Module]:
        """For the duration, `module` (the live network this averages) holds the averaged
        weights; its own come back bit for bit after. Nothing outside `module` is copied."""
        own = {k: v.clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.model.state_dict())
        try:
            yield module
        finally:
            module.load_state_dict(own)
