"""Class accuracy of (generated) digits, read by the shipped digit classifier.

The classifier (hwaksan/weights/eval/digits_classifier.*) scores >= 97% on the held-out real
digits, so on samples of a class-conditional model it measures how often the class is right.
"""

from __future__ import annotations

import torch

from hwaksan.nets.features import load_feature_net


@torch.no_grad()
def digits_predictions(images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted digit [N] for images [N, 1 or 3, H, W] in [-1, 1] (resized to 16x16)."""
    net = load_feature_net("digits_classifier")
    return torch.cat([net(batch).argmax(1) for batch in images.split(batch_size)])


def digits_accuracy(images: torch.Tensor, labels: torch.Tensor | list[int]) -> float:
    """Fraction of images the classifier reads as their intended digit `labels` [N]."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    return float((digits_predictions(images) == labels).float().mean())


def digits_histogram(images: torch.Tensor) -> list[int]:
    """How many images the classifier reads as each digit 0..9."""
    return torch.bincount(digits_predictions(images), minlength=10).tolist()
