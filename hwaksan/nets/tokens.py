"""A feature map seen as a sequence of tokens, one per position: free views both ways when the
map is channels-last (the layout attention, the GroupNorm kernel and the 1x1 products read)."""

from __future__ import annotations

import torch


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); a free view when x is channels-last."""
    B, C, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, H * W, C)  # (B, HW, C)


def from_tokens(h: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), channels-last strides, no copy."""
    return h.unflatten(1, (height, width)).permute(0, 3, 1, 2)  # (B, C, H, W)
