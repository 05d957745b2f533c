"""GroupNorm (Wu & He 2018) with fast paths for channels-last feature maps on the CPU.

float32: a compiled kernel (nets/kernels/group_norm.cpp) does norm, the ResBlock's conditioning
and SiLU in one read pass and one write pass per sample, forward and backward. Without a compiler,
and for bf16: PyTorch's native forward, whose channels-last backward ran 3x (fp32) to 25x (bf16)
slower than its NCHW one here (16x64x32x32, one thread, 2026-11-24), so the backward is rewritten
as per-(sample, channel) sums over positions plus one affine map of x and dy.
`GroupNorm.silu` fuses the SiLU that follows every norm of the U-Net into the same autograd node.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets import kernels
from hwaksan.nets.tokens import from_tokens, to_tokens


class _ChannelsLastGroupNorm(torch.autograd.Function):
    """y = (x - mean_g) * rstd_g * weight + bias, x (B, C, H, W) in channels-last memory."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float):
        B, C, H, W = x.shape
        y, mean, rstd = torch.native_group_norm(x, weight, bias, B, C, H * W, groups, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.groups = groups
        return y  # (B, C, H, W), channels-last

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, rstd = ctx.saved_tensors
        return (*_channels_last_backward(dy, x, weight, mean, rstd, ctx.groups), None, None)


def _channels_last_backward(dy, x, weight, mean, rstd, groups: int, reuse_dy: bool = False):
    """(dx, dweight, dbias) of GroupNorm for channels-last x and dy (B, C, H, W), float32 math.

    `reuse_dy`: dy is a float32 scratch tensor the caller owns, and dx is written over it."""
    B, C, H, W = x.shape
    per_group = C // groups
    X, D = to_tokens(x), to_tokens(dy)  # (B, HW, C) each, views
    mean_c = mean.float().repeat_interleave(per_group, 1)  # (B, C)
    rstd_c = rstd.float().repeat_interleave(per_group, 1)  # (B, C)
    sum_dy = D.sum(1, dtype=torch.float32)  # (B, C)
    sum_dy_xhat = rstd_c * (_channel_dots(D, X) - mean_c * sum_dy)  # (B, C)
    grad_weight = sum_dy_xhat.sum(0)  # (C,)
    grad_bias = sum_dy.sum(0)  # (C,)
    w = weight.float()  # (C,)
    n = H * W * per_group
    m1 = (w * sum_dy).unflatten(1, (groups, per_group)).sum(-1) / n  # (B, G)
    m2 = (w * sum_dy_xhat).unflatten(1, (groups, per_group)).sum(-1) / n  # (B, G)
    m1 = m1.repeat_interleave(per_group, 1)  # (B, C)
    m2 = m2.repeat_interleave(per_group, 1)  # (B, C)
    # dx = rstd (w dy - m1 - xhat m2), written as a dy + b x + c per (sample, channel)
    a = (rstd_c * w)[:, None]  # (B, 1, C)
    b = (-rstd_c * rstd_c * m2)[:, None]  # (B, 1, C)
    c = (rstd_c * (rstd_c * m2 * mean_c - m1))[:, None]  # (B, 1, C)
    if reuse_dy and D.dtype == torch.float32:
        dx = D.mul_(a).addcmul_(X, b).add_(c)  # (B, HW, C), no new full-size tensor
    else:
        dx = torch.addcmul(c, D, a).addcmul_(X, b).to(x.dtype)  # (B, HW, C), float32 math
    return from_tokens(dx, H, W), grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)


def _channel_dots(D: torch.Tensor, X: torch.Tensor, chunk_bytes: int = 8 << 20) -> torch.Tensor:
    """sum over positions of D * X (B, HW, C) -> (B, C) in float32, a few samples at a time:
    a full-size product would be a fresh tens-of-MB allocation (page faults) every step."""
    B, N, C = D.shape
    step = max(1, chunk_bytes // (N * C * 4))
    return torch.cat(
        [(D[i : i + step] * X[i : i + step]).sum(1, dtype=torch.float32) for i in range(0, B, step)]
    )  # (B, C)


class _GroupNormSiLU(torch.autograd.Function):
    """silu(GroupNorm(x)) in one node: keeps x (not the normalized map) and recomputes it."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float):
        B, C, H, W = x.shape
        y, mean, rstd = torch.native_group_norm(x, weight, bias, B, C, H * W, groups, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.groups = groups
        return F.silu(y, inplace=True)  # (B, C, H, W), x's memory format

    @staticmethod
    def backward(ctx, dz):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        B, C, H, W = x.shape
        per_group = C // ctx.groups
        scale = rstd.repeat_interleave(per_group, 1) * weight  # (B, C)
        shift = bias - mean.repeat_interleave(per_group, 1) * scale  # (B, C)
        y = torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None]).to(dz.dtype)
        dy = torch.ops.aten.silu_backward.grad_input(dz, y, grad_input=y)  # into y's memory
        if _is_channels_last(x):
            grads = _channels_last_backward(dy, x, weight, mean, rstd, ctx.groups, reuse_dy=True)
        else:
            grads = torch.ops.aten.native_group_norm_backward(
                dy, x, mean, rstd, weight, B, C, H * W, ctx.groups, [True, True, True]
            )
        return (*grads, None, None)


_NO_ADD = torch.empty(0)  # the kernel's 'no add' argument


class _FusedGroupNorm(torch.autograd.Function):
    """[silu](GroupNorm(x + add) * weight + bias) through the compiled kernel (nets/kernels):
    x (B, C, H, W) channels-last float32; weight, bias (B, C) per sample; add (B, C) or None."""

    @staticmethod
    def forward(ctx, x, weight, bias, add, groups: int, eps: float, silu: bool):
        w, b = weight.contiguous(), bias.contiguous()  # (B, C)
        a = _NO_ADD if add is None else add.contiguous()  # (B, C) or empty
        z, mean, rstd = kernels.group_norm().forward(to_tokens(x), w, b, a, groups, eps, silu)
        ctx.save_for_backward(x, w, b, a, mean, rstd)
        ctx.groups, ctx.silu, ctx.has_add = groups, silu, add is not None
        return from_tokens(z, *x.shape[2:])  # (B, C, H, W), channels-last

    @staticmethod
    def backward(ctx, dz):
        x, w, b, a, mean, rstd = ctx.saved_tensors
        dz = to_tokens(dz.contiguous(memory_format=torch.channels_last))  # (B, HW, C)
        dx, dw, db, da = kernels.group_norm().backward(
            dz, to_tokens(x), w, b, a, mean, rstd, ctx.groups, ctx.silu
        )
        da = da if ctx.has_add else None
        return from_tokens(dx, *x.shape[2:]), dw, db, da, None, None, None


def _is_channels_last(x: torch.Tensor) -> bool:
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class GroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` (same parameters and state dict) with fast CPU paths for channels-last maps:
    a compiled fused kernel for float32 (nets/kernels), else a rewritten backward.

    `silu(x, add=, scale=, shift=)` is a U-Net ResBlock's whole "norm, condition, activate":
    silu(GroupNorm(x + add) * (1 + scale) + shift), add / scale / shift (B, C) per sample or None.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused(x):
            return self._apply_fused(x, silu=False)
        if x.dim() == 4 and _is_channels_last(x) and x.device.type == "cpu" and self.affine:
            return _ChannelsLastGroupNorm.apply(
                x, self.weight, self.bias, self.num_groups, self.eps
            )
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def silu(
        self,
        x: torch.Tensor,
        add: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        shift: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """silu(self(x + add) * (1 + scale) + shift) -> (B, C, H, W); x (B, C, H, W)."""
        if self._fused(x):
            return self._apply_fused(x, True, add, scale, shift)
        if add is not None:
            x = x + add[:, :, None, None]  # (B, C, H, W)
        if scale is not None:
            return F.silu(self(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
        plain = x.dim() != 4 or x.device.type != "cpu" or not self.affine
        if plain or torch.is_autocast_enabled("cpu"):
            return F.silu(self(x))
        return _GroupNormSiLU.apply(x, self.weight, self.bias, self.num_groups, self.eps)

    def _fused(self, x: torch.Tensor) -> bool:
        """Whether the compiled kernel takes x: float32, channels-last, CPU, no autocast."""
        return (
            x.dim() == 4
            and x.dtype == torch.float32
            and x.device.type == "cpu"
            and self.affine
            and _is_channels_last(x)
            and not torch.is_autocast_enabled("cpu")
            and kernels.group_norm() is not None
        )

    def _apply_fused(self, x, silu: bool, add=None, scale=None, shift=None) -> torch.Tensor:
        B = x.shape[0]
        weight, bias = self.weight.expand(B, -1), self.bias.expand(B, -1)  # (B, C)
        if scale is not None:  # ADM's scale-shift folded into the per-sample affine
            weight, bias = weight * (1 + scale), bias * (1 + scale) + shift  # (B, C)
        return _FusedGroupNorm.apply(x, weight, bias, add, self.num_groups, self.eps, silu)
