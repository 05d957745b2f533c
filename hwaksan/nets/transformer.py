"""Transformer blocks over a feature map: self-attention, cross-attention to a context, MLP.

The latent-diffusion "SpatialTransformer" (Rombach et al. 2022, sec. 3.3): the U-Net reads a
caption (or any token sequence) through cross-attention, Q from the image, K and V from the text.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets.attention import Attention
from hwaksan.nets.linear import Linear
from hwaksan.nets.norm import GroupNorm
from hwaksan.nets.resnet import zero_module
from hwaksan.nets.tokens import from_tokens, to_tokens


class GEGLU(nn.Module):
    """Linear to 2*dim_out, then a * GELU(gate) (Shazeer 2020, "GLU variants")."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)  # (B, N, dim_out) each
        return a * F.gelu(gate)  # (B, N, dim_out)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention (skipped when there is no context), GEGLU MLP."""

    def __init__(self, dim: int, heads: int, context_dim: int, mult: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads=heads, dim_head=dim // heads, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, context_dim, heads=heads, dim_head=dim // heads, bias=False)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(GEGLU(dim, dim * mult), Linear(dim * mult, dim))

    def forward(self, x, context=None, context_mask=None, cross_attention_kwargs=None):
        """x (B, N, dim), context (B, M, context_dim) or None -> (B, N, dim); the keyword
        arguments go to both attentions' processors (diffusers' BasicTransformerBlock)."""
        kwargs = cross_attention_kwargs or {}
        x = x + self.attn1(self.norm1(x), **kwargs)  # (B, N, dim)
        if context is not None:
            x = x + self.attn2(self.norm2(x), context, context_mask, **kwargs)  # (B, N, dim)
        return x + self.ff(self.norm3(x))  # (B, N, dim)


class SpatialTransformer(nn.Module):
    """GroupNorm, project in, `depth` TransformerBlocks over H*W tokens, project out, residual."""

    def __init__(
        self, channels: int, num_heads: int, context_dim: int, depth: int = 1, norm_groups: int = 32
    ):
        super().__init__()
        self.norm = GroupNorm(norm_groups, channels)
        self.proj_in = Linear(channels, channels)
        self.blocks = nn.ModuleList(
            TransformerBlock(channels, num_heads, context_dim) for _ in range(depth)
        )
        self.proj_out = zero_module(Linear(channels, channels))

    def forward(self, x, context=None, context_mask=None, cross_attention_kwargs=None):
        """x (B, C, H, W), context (B, M, context_dim) -> (B, C, H, W)."""
        h = self.proj_in(to_tokens(self.norm(x)))  # (B, HW, C)
        for block in self.blocks:
            h = block(h, context, context_mask, cross_attention_kwargs)  # (B, HW, C)
        h = self.proj_out(h)  # (B, HW, C)
        return x + from_tokens(h, x.shape[2], x.shape[3])  # (B, C, H, W)
