"""What a diffusion recipe conditions its model on: nothing, or class labels (prompts: `text.py`).

A conditioner drops each training example's condition to the null one with `cond_drop_prob`, so
the same network is also unconditional and classifier-free guidance works (Ho & Salimans 2022);
turns a batch into the model's keyword arguments; gives the progress grid its conditions; and
describes itself for the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn


class Conditioner:
    """No condition: the interface, with what an unconditional model needs (nothing)."""

    kind = "diffusion"  # the recipe's "kind" (after the space's prefix)
    num_classes: int | None = None

    def drop(self, batch: dict) -> dict:
        """The batch with some conditions replaced by the null one (the only random draw here)."""
        return batch

    def cond(self, batch: dict, device: torch.device) -> dict:
        """The model's keyword arguments for a (dropped) batch."""
        return {}

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        """(the model to sample, its cond) for a progress grid of `n` images."""
        return model, None

    def check(self, model: nn.Module) -> None:
        """Raise `HwaksanError` if `model` cannot read this condition (nothing to check here)."""

    def describe(self) -> dict:
        return {}


class Unconditional(Conditioner):
    """A model of the data alone: model(x_t, t)."""


class ClassLabels(Conditioner):
    """model(x_t, t, class_labels=...): batch["class_id"] [B] long, dropped to the null class
    `num_classes`; progress grids show classes 0, 1, 2, ... in turn."""

    def __init__(self, num_classes: int, cond_drop_prob: float = 0.1) -> None:
        self.num_classes, self.cond_drop_prob = num_classes, cond_drop_prob

    def drop(self, batch: dict) -> dict:
        labels = batch["class_id"].to(batch["image"].device)  # (B,)
        drop = torch.rand(labels.shape, device=labels.device) < self.cond_drop_prob
        null = torch.full_like(labels, self.num_classes)
        return {**batch, "class_id": torch.where(drop, null, labels)}

    def cond(self, batch: dict, device: torch.device) -> dict:
        return {"class_labels": batch["class_id"].to(device)}

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        return model, {"class_labels": torch.arange(n, device=device) % self.num_classes}
