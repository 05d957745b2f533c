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
        h = self.conv1(self.norm1.silu(x))  # (B, C_out, H, W)
        e = self.emb_proj(emb)  # (B, C_out or 2*C_out)
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)  # (B, C_out) each
            h = self.norm2.silu(h, scale=scale, shift=shift)  # (B, C_out, H, W)
        else:
            h = self.norm2.silu(h, add=e)  # (B, C_out, H, W)
        h = self.conv2(self.dropout(h))  # (B, C_out, H, W)
        return self.skip(x) + h  # (B, C_out, H, W)


class Downsample(nn.Module):
    """Halve H and W with a strided 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour repeat, then a 3x3 convolution.

    Computed without the repeat: each of the four output phases (row and column parity) is a 2x2
    convolution of the small map with summed 3x3 taps, 16 instead of 36 multiply-adds per output
    (the sub-pixel view of Shi et al. 2016); the same function up to float rounding.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if hasattr(conv, "adds_nothing") and conv.adds_nothing():  # a LoRA with nothing to add
            conv = conv.base_layer
        if type(conv) is not nn.Conv2d or conv._forward_hooks or conv._forward_pre_hooks:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # a wrapper
        kernels, bias = _phase_kernels(conv.weight), conv.bias.repeat(4)
        phases = F.conv2d(x, kernels, bias, padding=1)  # (B, 4C, H+1, W+1)
        return _Interleave.apply(phases)  # (B, C, 2H, 2W)


_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) parity of each output phase


class _Interleave(torch.autograd.Function):
    """(B, 4C, H+1, W+1) phase maps -> (B, C, 2H, 2W): output (2i+a, 2j+b) is phase (a, b) at
    (i+a, j+b). Its backward writes each phase's gradient once and zeroes only the row and column
    that phase never reads; autograd's four slices would build four zero-filled full-size
    gradients and add them (2x slower for the whole Upsample, 64x128x16x16, one thread)."""

    @staticmethod
    def forward(ctx, phases: torch.Tensor) -> torch.Tensor:
        B, C4, H1, W1 = phases.shape
        C, H, W, fmt = C4 // 4, H1 - 1, W1 - 1, _memory_format(phases)
        out = torch.empty(B, C, 2 * H, 2 * W, dtype=phases.dtype, device=phases.device,
                          memory_format=fmt)  # fmt: skip
        for i, (a, b) in enumerate(_PHASES):
            out[:, :, a::2, b::2] = phases[:, i * C : (i + 1) * C, a : a + H, b : b + W]
        ctx.shape, ctx.fmt = phases.shape, fmt
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        B, C4, H1, W1 = ctx.shape
        C, H, W = C4 // 4, H1 - 1, W1 - 1
        grad = torch.empty(ctx.shape, dtype=grad_out.dtype, device=grad_out.device,
                           memory_format=ctx.fmt)  # fmt: skip
        for i, (a, b) in enumerate(_PHASES):
            phase = grad[:, i * C : (i + 1) * C]  # (B, C, H+1, W+1)
            phase[:, :, a : a + H, b : b + W] = grad_out[:, :, a::2, b::2]
            phase[:, :, H if a == 0 else 0, :] = 0  # the row this phase does not read
            phase[:, :, :, W if b == 0 else 0] = 0  # and the column
        return grad


def _phase_kernels(w: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) -> (4*O, I, 2, 2): the kernels of output phases (0,0), (0,1), (1,0), (1,1)."""
    kernels = [_fold(_fold(w, 2, odd_row), 3, odd_col) for odd_row in (0, 1) for odd_col in (0, 1)]
    return torch.cat(kernels).contiguous(memory_format=_memory_format(w))  # (4*O, I, 2, 2)


def _fold(k: torch.Tensor, dim: int, odd: int) -> torch.Tensor:
    """Three taps along `dim` -> two, for a 2x nearest-upsampled input.

    Output row 2i sees input rows (i-1, i, i): taps (k0, k1 + k2) over rows (i-1, i); row 2i+1
    sees (i, i, i+1): taps (k0 + k1, k2) over rows (i, i+1).
    """
    k0, k1, k2 = k.unbind(dim)
    return torch.stack((k0 + k1, k2) if odd else (k0, k1 + k2), dim)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    cl = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format
