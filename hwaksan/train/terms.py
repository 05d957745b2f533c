"""Extra loss terms a diffusion recipe adds to its denoising loss (the token grounding loss today;
prior preservation and distillation terms next).

A term may watch the main forward pass: `recording(model)` is a context manager the recipe wraps
around the denoising loss, and what it yields (e.g. the cross-attention maps) reaches the term.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

import torch
from torch import nn


class LossTerm(ABC):
    """term(model, batch, cond, recorded) -> (weighted loss, numbers to log)."""

    def recording(self, model: nn.Module) -> AbstractContextManager:
        """Entered around the main loss's forward; yields what `__call__` gets as `recorded`."""
        return contextlib.nullcontext()

    @abstractmethod
    def __call__(
        self, model: nn.Module, batch: dict, cond: dict, recorded
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The term, weighted, for a batch (conditions already dropped) and the model's `cond`."""

    def describe(self) -> dict:
        """JSON fields the recipe's description gains (checked on resume)."""
        return {}
