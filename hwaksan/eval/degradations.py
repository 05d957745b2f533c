"""Controlled image degradations (blur, noise): a metric worth its name must grow with them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with std `sigma` pixels (replicate padding)."""
    radius = max(1, int(3 * sigma))
    kernel = torch.exp(
        -(torch.arange(-radius, radius + 1, dtype=images.dtype) ** 2) / (2 * sigma**2)
    )
    channels = images.shape[1]
    kernel = (kernel / kernel.sum()).repeat(channels, 1, 1, 1)  # [C, 1, 1, k]
    images = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    images = F.conv2d(images, kernel, groups=channels)  # blur along x
    images = F.pad(images, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(images, kernel.transpose(2, 3), groups=channels)  # blur along y


def add_noise(images: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """images + std * N(0, I) (seeded), clamped back to [-1, 1]."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return (images + std * noise.to(images.dtype)).clamp(-1, 1)
