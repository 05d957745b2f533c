"""Timestep and class embeddings: what tells the U-Net "how noisy" and "which class".

Sinusoidal features of t (Vaswani et al. 2017, sec. 3.5; used for diffusion by Ho et al. 2020)
through a two-layer MLP, plus an optional learned class vector (Dhariwal & Nichol 2021).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t w_i), sin(t w_i)] with w_i = max_period^(-i / (dim/2)): (B,) -> (B, dim).

    The order and frequencies of ADM's `timestep_embedding` and diffusers' `flip_sin_to_cos=True`.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)  # (half,)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    return F.pad(emb, (0, dim % 2))  # (B, dim)


class TimestepEmbedding(nn.Module):
    """t -> sinusoid(t) -> Linear -> SiLU -> Linear: the vector every ResBlock is told."""

    def __init__(self, sinusoid_dim: int, embed_dim: int):
        super().__init__()
        self.sinusoid_dim = sinusoid_dim
        self.linear_1 = nn.Linear(sinusoid_dim, embed_dim)
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        h = timestep_embedding(t, self.sinusoid_dim)  # (B, sinusoid_dim)
        return self.linear_2(F.silu(self.linear_1(h)))  # (B, embed_dim)


class ClassEmbedding(nn.Module):
    """One learned vector per class plus a last "null" row (id == num_classes).

    The null class is what classifier-free guidance (Ho & Salimans 2022) drops labels to;
    `labels=None` means null for the whole batch.
    """

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes + 1, embed_dim)

    def forward(self, labels: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        if labels is None:
            device = self.embedding.weight.device
            labels = torch.full((batch_size,), self.num_classes, device=device)
        return self.embedding(labels.long().reshape(-1))  # (B, embed_dim)
