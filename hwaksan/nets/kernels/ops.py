"""The compiled kernels as PyTorch custom operators (`torch.ops.hwaksan.*`), so `torch.compile`
sees each call as one opaque op with known output shapes instead of stopping at a foreign
function. Registering them compiles nothing; the first call does (`kernels.group_norm()`).
(No `from __future__ import annotations` here: the schemas are read from these annotations.)"""

import torch
from torch import Tensor

from hwaksan.nets import kernels


@torch.library.custom_op("hwaksan::group_norm_forward", mutates_args=())
def group_norm_forward(
    x: Tensor, weight: Tensor, bias: Tensor, add: Tensor, groups: int, eps: float, silu: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """-> z (B, N, C), mean (B, G), rstd (B, G); see group_norm.cpp."""
    z, mean, rstd = kernels.group_norm().forward(x, weight, bias, add, groups, eps, silu)
    return z, mean, rstd


@group_norm_forward.register_fake
def _(x, weight, bias, add, groups, eps, silu):
    B = x.shape[0]
    return torch.empty_like(x), x.new_empty(B, groups), x.new_empty(B, groups)


@torch.library.custom_op("hwaksan::group_norm_backward", mutates_args=())
def group_norm_backward(
    dz: Tensor, x: Tensor, weight: Tensor, bias: Tensor, add: Tensor, mean: Tensor,
    rstd: Tensor, groups: int, silu: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """-> dx (B, N, C), dweight (B, C), dbias (B, C), dadd (B, C) or empty."""
    dx, dw, db, da = kernels.group_norm().backward(dz, x, weight, bias, add, mean, rstd, groups,
                                                   silu)  # fmt: skip
    return dx, dw, db, da


@group_norm_backward.register_fake
def _(dz, x, weight, bias, add, mean, rstd, groups, silu):
    B, _, C = x.shape
    da = x.new_empty(B, C) if add.numel() else x.new_empty(0)
    return torch.empty_like(x), x.new_empty(B, C), x.new_empty(B, C), da


@torch.library.custom_op("hwaksan::attention_forward", mutates_args=())
def attention_forward(qkv: Tensor) -> tuple[Tensor, Tensor]:
    """qkv (B, N, 3, H, D) -> out (B, N, H, D), lse (B, H, N); see attention.cpp."""
    out, lse = kernels.attention().forward(qkv)
    return out, lse


@attention_forward.register_fake
def _(qkv):
    B, N, _, H, D = qkv.shape
    return qkv.new_empty(B, N, H, D), qkv.new_empty(B, H, N)


@torch.library.custom_op("hwaksan::attention_backward", mutates_args=())
def attention_backward(dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor) -> Tensor:
    """-> dqkv (B, N, 3, H, D)."""
    return kernels.attention().backward(dout, qkv, out, lse)


@attention_backward.register_fake
def _(dout, qkv, out, lse):
    return torch.empty_like(qkv)
