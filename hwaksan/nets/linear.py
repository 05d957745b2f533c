"""`nn.Linear` whose float32 CPU product over token sequences runs as a 1x1 convolution.

PyTorch sends a float32 CPU `F.linear` to MKL's sgemm, which on this AMD CPU reached ~95
GFLOP/s; the same product as a channels-last 1x1 convolution goes to oneDNN and ran forward +
backward 2x faster (32x256 tokens, 128 -> 128, one thread, measured 2026-11-24). Same math,
same parameters and state-dict keys; bf16 (autocast) already takes oneDNN and keeps `F.linear`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(x, weight, bias); a (B, N, in) float32 CPU input goes through oneDNN (1x1 conv)."""
    fast = x.dim() == 3 and x.device.type == "cpu" and x.dtype == torch.float32
    if not fast or torch.is_autocast_enabled("cpu") or not x.is_contiguous():
        return F.linear(x, weight, bias)
    B, N, C = x.shape
    image = x.view(B, N, 1, C).permute(0, 3, 1, 2)  # (B, in, N, 1), channels-last: no copy
    out = F.conv2d(image, weight[:, :, None, None], bias)  # (B, out, N, 1)
    return out.permute(0, 2, 3, 1).reshape(B, N, -1)  # (B, N, out), a view


class Linear(nn.Linear):
    """`nn.Linear`; a (B, N, in) float32 input on the CPU goes through oneDNN as a 1x1 conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
