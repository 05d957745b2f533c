"""The one-time checks a freshly loaded kernel passes before it is used: forward and backward
against the PyTorch ops at the shapes the shipped models run (a kernel wrong on this CPU, or at
one of those shapes, falls back to PyTorch instead of corrupting a result or the heap).

They draw from a local generator, never the global torch RNG: loading a kernel mid-run must not
change what a seeded run samples next.
"""

from __future__ import annotations

import contextlib
from types import ModuleType

import torch
import torch.nn.functional as F

# (B, N, heads, d): the shipped U-Nets' self-attention (64 tokens of 16- and 32-wide heads at
# 8 x 8, 16 tokens of 32-wide heads in the 64 px model's middle: d > N, the shape whose backward
# once overflowed), plus an odd token count and batch 1
ATTENTION_SHAPES = [(2, 64, 4, 16), (1, 64, 4, 32), (1, 16, 4, 32), (2, 5, 2, 8)]
# (B, N, C, groups): the shipped U-Nets' GroupNorms (8 groups of 32-128 channels at 4 x 4 to
# 16 x 16), plus an odd map
GROUP_NORM_SHAPES = [(2, 256, 32, 8), (2, 64, 64, 8), (1, 16, 128, 8), (2, 9, 12, 3)]
TOLERANCE = dict(atol=2e-4, rtol=2e-4)


def check_attention(ops: ModuleType) -> None:
    """Forward and backward against F.scaled_dot_product_attention at ATTENTION_SHAPES."""
    with _autograd_on():
        _check_attention(ops)


def check_group_norm(ops: ModuleType) -> None:
    """Forward and backward against F.group_norm (+ add, per-sample affine, SiLU) at
    GROUP_NORM_SHAPES, each with and without the add and the SiLU."""
    with _autograd_on():
        _check_group_norm(ops)


def _autograd_on():
    """The references' gradients need autograd, also when the first use of a kernel comes
    inside `torch.no_grad()` or `torch.inference_mode()` (sampling)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.enable_grad())
    return stack


def _check_attention(ops: ModuleType) -> None:
    gen = torch.Generator().manual_seed(0)
    for B, N, heads, d in ATTENTION_SHAPES:
        qkv = torch.randn(B, N, 3, heads, d, generator=gen).requires_grad_()  # (B, N, 3, h, d)
        dout = torch.randn(B, N, heads, d, generator=gen)  # (B, N, h, d)
        out, lse = ops.forward(qkv.detach())
        dqkv = ops.backward(dout, qkv.detach(), out, lse)  # (B, N, 3, h, d)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (B, h, N, d)
        ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # (B, N, h, d)
        (want,) = torch.autograd.grad(ref, qkv, dout)
        _same(out, ref, "forward", "SDPA", (B, N, heads, d))
        _same(dqkv, want, "backward", "SDPA", (B, N, heads, d))


def _check_group_norm(ops: ModuleType) -> None:
    gen = torch.Generator().manual_seed(0)
    for i, (B, N, C, groups) in enumerate(GROUP_NORM_SHAPES):
        x, dz = (torch.randn(B, N, C, generator=gen) for _ in range(2))  # (B, N, C)
        w, b, a = (torch.randn(B, C, generator=gen) for _ in range(3))  # (B, C)
        silu, add = i % 2 == 0, a if i < 2 else None
        a_arg = torch.empty(0) if add is None else add  # the kernel's 'no add'
        z, mean, rstd = ops.forward(x, w, b, a_arg, groups, 1e-5, silu)
        grads = ops.backward(dz, x, w, b, a_arg, mean, rstd, groups, silu)
        inputs = [t.clone().requires_grad_() for t in (x, w, b, a)]
        ref = _group_norm_reference(
            *inputs[:3], inputs[3] if add is not None else None, groups, silu
        )
        want = torch.autograd.grad(ref, inputs, dz, allow_unused=True)
        _same(z, ref, "forward", "F.group_norm", (B, N, C, groups))
        for got, expected in zip(grads, want):
            if expected is not None:
                _same(got, expected, "backward", "F.group_norm", (B, N, C, groups))


def _group_norm_reference(x, w, b, add, groups: int, silu: bool) -> torch.Tensor:
    """[silu](GroupNorm(x + add) * w + b) over (B, N, C) tokens, w / b / add (B, C)."""
    if add is not None:
        x = x + add[:, None]  # (B, N, C)
    y = F.group_norm(x.transpose(1, 2), groups, eps=1e-5).transpose(1, 2) * w[:, None] + b[:, None]
    return F.silu(y) if silu else y  # (B, N, C)


def _same(got: torch.Tensor, want: torch.Tensor, part: str, op: str, shape: tuple) -> None:
    if got.shape != want.shape or not torch.allclose(got, want, **TOLERANCE):
        raise RuntimeError(f"its {part} differs from {op} on this machine at shape {shape}")
