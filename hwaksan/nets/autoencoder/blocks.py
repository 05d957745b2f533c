"""The convolutional encoder and decoder the KL and VQ autoencoders share.

LDM's `Encoder` / `Decoder` (Rombach et al. 2022; the VQGAN of Esser et al. 2021) at small width:
residual blocks per level, strided-conv downsampling, a middle block, GroupNorm-SiLU-conv out.
The spatial layout is kept: a latent pixel describes an f x f patch of the image.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets.attention import AttentionBlock
from hwaksan.nets.norm import GroupNorm
from hwaksan.nets.resnet import Downsample, Upsample

from .config import AutoencoderConfig


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice plus a skip (He et al. 2016), no timestep input."""

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int):
        super().__init__()
        self.norm1 = GroupNorm(norm_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = GroupNorm(norm_groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        same = in_channels == out_channels
        self.skip = nn.Identity() if same else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(F.silu(self.norm2(h)))  # (B, C_out, H, W)
        return self.skip(x) + h  # (B, C_out, H, W)


def _middle(channels: int, config: AutoencoderConfig) -> nn.Sequential:
    """ResnetBlock (- attention) - ResnetBlock at the lowest resolution."""
    g = config.norm_groups
    attention = [AttentionBlock(channels, 1, g)] if config.mid_attention else []
    return nn.Sequential(
        ResnetBlock(channels, channels, g), *attention, ResnetBlock(channels, channels, g)
    )


class Encoder(nn.Module):
    """x [B, in_channels, R, R] -> [B, out_channels, R/f, R/f]."""

    def __init__(self, config: AutoencoderConfig, out_channels: int):
        super().__init__()
        ch, g = config.channels, config.norm_groups
        self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)
        layers, c_in = [], ch[0]
        for level, c in enumerate(ch):
            for _ in range(config.layers_per_block):
                layers.append(ResnetBlock(c_in, c, g))
                c_in = c
            if level < len(ch) - 1:
                layers.append(Downsample(c))
        self.down = nn.Sequential(*layers)
        self.mid = _middle(ch[-1], config)
        self.norm_out = GroupNorm(g, ch[-1])
        self.conv_out = nn.Conv2d(ch[-1], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(self.conv_in(x))  # (B, ch[-1], R/f, R/f)
        h = self.mid(h)  # (B, ch[-1], R/f, R/f)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_channels, R/f, R/f)


class Decoder(nn.Module):
    """z [B, latent_channels, R/f, R/f] -> x [B, in_channels, R, R]; `conv_out` is the last layer
    (where the VQGAN's adaptive weight measures gradients)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        ch, g = config.channels, config.norm_groups
        self.conv_in = nn.Conv2d(config.latent_channels, ch[-1], 3, padding=1)
        self.mid = _middle(ch[-1], config)
        layers, c_in = [], ch[-1]
        for level in reversed(range(len(ch))):
            for _ in range(config.layers_per_block + 1):
                layers.append(ResnetBlock(c_in, ch[level], g))
                c_in = ch[level]
            if level > 0:
                layers.append(Upsample(c_in))
        self.up = nn.Sequential(*layers)
        self.norm_out = GroupNorm(g, ch[0])
        self.conv_out = nn.Conv2d(ch[0], config.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))  # (B, ch[-1], R/f, R/f)
        h = self.up(h)  # (B, ch[0], R, R)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, in_channels, R, R)
