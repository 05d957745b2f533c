"""The U-Net's convolutional parts: the residual block that hears the timestep, and resampling.

ResBlock as in DDPM (Ho et al. 2020, appendix B) with ADM's scale-shift conditioning
(Dhariwal & Nichol 2021, "adaptive group normalization": GroupNorm(h) * (1 + s) + b).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets.norm import GroupNorm


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters, so the branch it ends starts as the identity (as ADM does)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, timestep in, GroupNorm-SiLU-dropout-conv, plus a skip connection."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embed_dim: int,
        dropout: float = 0.0,
        norm_groups: int = 32,
        use_scale_shift_norm: bool = True,
    ):
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.norm1 = GroupNorm(norm_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(embed_dim, out_channels * (2 if use_scale_shift_norm else 1))
        self.norm2 = GroupNorm(norm_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        same = in_channels == out_channels
        self.skip = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W), emb (B, E) already through SiLU -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        e = self.emb_proj(emb)[:, :, None, None]  # (B, C_out or 2*C_out, 1, 1)
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)  # (B, C_out, 1, 1) each
            h = self.norm2(h) * (1 + scale) + shift  # (B, C_out, H, W)
        else:
            h = self.norm2(h + e)  # (B, C_out, H, W)
        h = self.conv2(self.dropout(F.silu(h)))  # (B, C_out, H, W)
        return self.skip(x) + h  # (B, C_out, H, W)


class Downsample(nn.Module):
    """Halve H and W with a strided 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour repeat, then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2H, 2W)
        return self.conv(x)  # (B, C, 2H, 2W)
