"""A small transformer over the text encoder's token states, trained with the U-Net.

Latent diffusion trains its text transformer tau_theta jointly with the U-Net (Rombach et al.
2022, sec. 3.3); here a frozen encoder (mini-CLIP, MiniLM, CLIP) supplies the tokens and a few
trainable layers on top re-read them in order. A contrastively trained encoder reads a caption
largely as a bag of words ("a red circle left of a blue square" ~ the swapped caption), so the
U-Net cannot tell which color goes with which shape; these layers see each token's index (the
sinusoidal positions of Vaswani et al. 2017, sec. 3.5) and learn the binding from the diffusion
loss itself. Every layer's output projection starts at zero: a fresh encoder is the identity, so
it can be added to a trained model without changing what that model does.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hwaksan.nets.attention import Attention
from hwaksan.nets.embeddings import timestep_embedding
from hwaksan.nets.resnet import zero_module
from hwaksan.nets.transformer import GEGLU


class ContextLayer(nn.Module):
    """Pre-norm self-attention over the tokens (positions added to its input), then a GEGLU MLP."""

    def __init__(self, dim: int, heads: int, mult: int = 2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads=heads, dim_head=dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(GEGLU(dim, dim * mult), nn.Linear(dim * mult, dim))
        zero_module(self.attn.to_out)
        zero_module(self.ff[-1])

    def forward(self, h: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h (B, M, D), pos (M, D), mask (B, M) True = real token -> (B, M, D)."""
        h = h + self.attn(self.norm1(h + pos), context_mask=mask)  # (B, M, D)
        return h + self.ff(self.norm2(h))  # (B, M, D)


class ContextEncoder(nn.Module):
    """context (B, M, D), mask (B, M) or None -> re-read context (B, M, D); identity at init."""

    def __init__(self, dim: int, layers: int, heads: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(ContextLayer(dim, heads) for _ in range(layers))

    def forward(self, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, M, D = context.shape
        index = torch.arange(M, device=context.device)
        pos = timestep_embedding(index, D).to(context.dtype)  # (M, D): token index, sinusoidal
        if mask is None:
            mask = torch.ones(B, M, dtype=torch.bool, device=context.device)
        mask = mask.bool() | ~mask.bool().any(1, keepdim=True)  # an all-padding row reads itself
        h = context
        for layer in self.layers:
            h = layer(h, pos, mask)  # (B, M, D)
        return h
