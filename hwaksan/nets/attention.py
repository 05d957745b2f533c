"""Attention: one module for self- and cross-attention, and the U-Net's spatial self-attention.

softmax(Q K^T / sqrt(d)) V (Vaswani et al. 2017, eq. 1) through `F.scaled_dot_product_attention`;
on the CPU, float32 self-attention runs on a compiled kernel (nets/kernels/attention.cpp, 2x SDPA
here) and bf16 on three plain ops. `Attention` keeps `to_q`, `to_k`, `to_v`, `to_out` as
`nn.Linear` layers (diffusers' names; the subclass `Linear` only routes float32 CPU products to
oneDNN): LoRA and Perfusion attach to them by wrapping. What runs between the projections is the
layer's `processor` (diffusers' attention-processor slot): `AttnProcessor` is the fast path above;
a recorder, IP-Adapter's second key/value or key-locking is a processor built from `attn.qkv`,
`attention` / `attention_probs` and `attn.merge_heads`, without copying the math.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets import kernels
from hwaksan.nets.linear import Linear, linear
from hwaksan.nets.norm import GroupNorm
from hwaksan.nets.resnet import zero_module
from hwaksan.nets.tokens import from_tokens, to_tokens


def attention_probs(q: torch.Tensor, k: torch.Tensor, mask=None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)), (B, h, N, d) x (B, h, M, d) -> (B, h, N, M), with its graph;
    mask (B, 1, 1, M) True = attend. The one place the attention probabilities are computed."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (B, h, N, M)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)  # (B, h, N, M)


def attention(q, k, v, mask=None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, N, d); mask (B, 1, 1, M) True = attend.

    `F.scaled_dot_product_attention`, except bf16/fp16 on the CPU, where its fused kernel ran
    forward + backward 2x slower than three plain ops (16x4x256x32, one thread, 2026-11-24).
    """
    if q.device.type != "cpu" or q.dtype not in (torch.bfloat16, torch.float16):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attention_probs(q, k, mask) @ v  # (B, h, N, d)


def attention_mask(context_mask: torch.Tensor | None) -> torch.Tensor | None:
    """A (B, M) context mask, True = attend, as the (B, 1, 1, M) bool mask `attention` takes."""
    return None if context_mask is None else context_mask.bool()[:, None, None, :]


class AttentionProcessor(Protocol):
    """What an `Attention` runs: (attn, x, context, context_mask, **kwargs) -> (B, N, query_dim).

    `kwarg_names` lists the per-call keyword arguments it reads (`cross_attention_kwargs`); every
    processor receives all of them and ignores the rest, since they reach every attention layer.
    """

    kwarg_names: tuple[str, ...]

    def __call__(self, attn, x, context=None, context_mask=None, **kwargs) -> torch.Tensor: ...


class AttnProcessor:
    """The default processor (diffusers' `AttnProcessor2_0`): self-attention with plain projections
    takes one fused q/k/v product and, on the CPU in float32, the compiled kernel; everything else
    the three projections and `attention`. Per-call keyword arguments are ignored."""

    kwarg_names: tuple[str, ...] = ()

    def __call__(self, attn, x, context=None, context_mask=None, **kwargs) -> torch.Tensor:
        """x (B, N, query_dim), context (B, M, context_dim) or None -> (B, N, query_dim)."""
        if context is None and attn._plain_projections():
            qkv = attn._fused_qkv(x)  # (B, N, 3, h, d)
            if context_mask is None and _kernel_takes(qkv):
                out = _SelfAttention.apply(qkv)  # (B, N, h, d)
                return attn.to_out(out.flatten(2))  # (B, N, query_dim)
            q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (B, h, N, d) each
        else:
            q, k, v = attn.qkv(x, context)  # (B, h, N, d), (B, h, M, d) x 2
        out = attention(q, k, v, attention_mask(context_mask))  # (B, h, N, d)
        return attn.to_out(attn.merge_heads(out))  # (B, N, query_dim)


class Attention(nn.Module):
    """Multi-head attention of `query_dim` tokens to themselves, or to a context (cross-attention).

    `context_mask` (B, M) is True for context tokens to attend to; masked-out tokens have no effect.
    `processor` computes it from the projections; keyword arguments of a call go to it.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        bias: bool = True,
    ):
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = Linear(query_dim, inner, bias=bias)
        self.to_k = Linear(context_dim, inner, bias=bias)
        self.to_v = Linear(context_dim, inner, bias=bias)
        self.to_out = Linear(inner, query_dim)
        self.processor: AttentionProcessor = AttnProcessor()

    def set_processor(self, processor: AttentionProcessor) -> None:
        """Run `processor` in place of the current one (diffusers' name); a processor that is an
        `nn.Module` (IP-Adapter's projections) becomes a submodule, saved with the weights."""
        self._modules.pop("processor", None)
        self.processor = processor

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        **cross_attention_kwargs,
    ) -> torch.Tensor:
        """x (B, N, query_dim), context (B, M, context_dim) or None -> (B, N, query_dim)."""
        return self.processor(self, x, context, context_mask, **cross_attention_kwargs)

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, heads * d) -> (B, heads, N, d)."""
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def merge_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, d) -> (B, N, heads * d), what `to_out` reads."""
        return t.transpose(1, 2).flatten(2)

    def qkv(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """q (B, h, N, d), k and v (B, h, M, d) through to_q, to_k, to_v (context None: x)."""
        context = x if context is None else context
        q = self.split_heads(self.to_q(x))  # (B, h, N, d)
        k = self.split_heads(self.to_k(context))  # (B, h, M, d)
        v = self.split_heads(self.to_v(context))  # (B, h, M, d)
        return q, k, v

    def _plain_projections(self) -> bool:
        """True while to_q, to_k, to_v are this file's own `Linear`s with no hooks, or wrappers
        that say they add nothing now (`adds_nothing()`: a LoRA at scale 0, fresh, or fused)
        around such a `Linear`: one fused product may then stand in for the three."""
        return all(_plain_linear(m) is not None for m in (self.to_q, self.to_k, self.to_v))

    def _fused_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention's q, k, v as one (in -> 3 * inner) product, (B, N, 3, h, d): x is read
        once, and its gradient comes out of one product instead of three that are then summed."""
        q, k, v = (_plain_linear(m) for m in (self.to_q, self.to_k, self.to_v))
        weight = torch.cat([q.weight, k.weight, v.weight])  # (3 * inner, in)
        bias = q.bias
        if bias is not None:
            bias = torch.cat([q.bias, k.bias, v.bias])  # (3 * inner,)
        return linear(x, weight, bias).unflatten(-1, (3, self.heads, -1))  # (B, N, 3, h, d)


def _plain_linear(m: nn.Module) -> Linear | None:
    """The plain `Linear` that computes `m`'s output, or None (a hook, or a wrapper that adds)."""
    if hasattr(m, "adds_nothing") and hasattr(m, "base_layer"):
        if m._forward_hooks or m._forward_pre_hooks or not m.adds_nothing():
            return None
        m = m.base_layer
    if type(m) is Linear and not (m._forward_hooks or m._forward_pre_hooks):
        return m
    return None


KERNEL_MAX_TOKENS = 1536  # the kernel keeps N x N scores per head in cache; between 2,048 and
# 4,096 tokens SDPA's tiled kernel overtakes it (benchmarks/results/fused_kernels.md, long rows)


def _kernel_takes(qkv: torch.Tensor) -> bool:
    """Whether the compiled attention kernel (nets/kernels/attention.cpp) takes this input."""
    return (
        qkv.shape[1] <= KERNEL_MAX_TOKENS
        and qkv.device.type == "cpu"
        and qkv.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and qkv.is_contiguous()
        and kernels.attention() is not None
    )


class _SelfAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d)) v from a fused qkv (B, N, 3, h, d) -> (B, N, h, d), through the
    compiled kernel: oneDNN's small-GEMM micro-kernel where PyTorch's fp32 SDPA calls MKL, which
    on this AMD CPU runs those products at half the speed (benchmarks/results/*throughput*)."""

    @staticmethod
    def forward(ctx, qkv):
        out, lse = kernels.attention().forward(qkv)
        ctx.save_for_backward(qkv, out, lse)
        return out  # (B, N, h, d)

    @staticmethod
    def backward(ctx, dout):
        qkv, out, lse = ctx.saved_tensors
        return kernels.attention().backward(dout.contiguous(), qkv, out, lse)  # (B, N, 3, h, d)


class AttentionBlock(nn.Module):
    """GroupNorm, self-attention over the H*W positions, residual (ADM's AttentionBlock)."""

    def __init__(self, channels: int, num_heads: int, norm_groups: int = 32):
        super().__init__()
        self.norm = GroupNorm(norm_groups, channels)
        self.attn = Attention(channels, heads=num_heads, dim_head=channels // num_heads)
        zero_module(self.attn.to_out)

    def forward(
        self, x: torch.Tensor, context=None, context_mask=None, cross_attention_kwargs=None
    ) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W); context is ignored (no cross-attention here)."""
        h = self.attn(to_tokens(self.norm(x)), **(cross_attention_kwargs or {}))  # (B, HW, C)
        return x + from_tokens(h, x.shape[2], x.shape[3])  # (B, C, H, W)
