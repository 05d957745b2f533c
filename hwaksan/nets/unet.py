"""The DDPM / ADM U-Net (Ho et al. 2020; Dhariwal & Nichol 2021) with optional class labels and
cross-attention to a context (Rombach et al. 2022): `UNet(UNetConfig(...))(x, t) -> prediction`.

Down path of ResBlocks (+ attention at chosen resolutions) and strided convs, a middle of
ResBlock-attention-ResBlock, an up path that concatenates the skips; the output conv starts at
zero. Memory format is a switch (`channels_last`, activations only): on this CPU it won in fp32
and NCHW won in bf16 (benchmarks/results/train_throughput.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.errors import HwaksanError
from hwaksan.nets.attention import AttentionBlock
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.context import ContextEncoder
from hwaksan.nets.embeddings import ClassEmbedding, TimestepEmbedding
from hwaksan.nets.norm import GroupNorm
from hwaksan.nets.resnet import Downsample, ResBlock, Upsample, zero_module
from hwaksan.nets.transformer import SpatialTransformer


@dataclass
class UNetConfig(JSONConfig):
    """Everything that decides the U-Net's shape; stored beside its weights as JSON."""

    config_name = "UNet"

    in_channels: int = 3
    out_channels: int | None = None  # None: the same as in_channels
    resolution: int = 32  # H == W of the inputs it is built for
    channels: tuple[int, ...] = (64, 128, 128)  # one level per width; each next level halves H, W
    layers_per_block: int = 1  # ResBlocks per level on the way down (one more on the way up)
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes that get attention
    num_heads: int = 4
    dropout: float = 0.0
    num_classes: int | None = None  # class embedding with an extra null class id == num_classes
    context_dim: int | None = None  # not None -> transformer blocks with cross-attention
    learn_sigma: bool = False  # True -> 2 * out_channels (mean and variance interpolation v)
    transformer_depth: int = 1
    context_layers: int = 0  # > 0: a trainable transformer re-reads the context (nets/context.py)
    norm_groups: int = 32
    use_scale_shift_norm: bool = True  # ADM's GroupNorm(h) * (1 + scale) + shift; False adds t
    channels_last: bool = False  # activations' memory format (speed, not math); weights stay NCHW

    def __post_init__(self):
        if self.out_channels is None:
            self.out_channels = self.in_channels

    @property
    def resolutions(self) -> list[int]:
        """Feature-map size at each level."""
        return [self.resolution // 2**i for i in range(len(self.channels))]

    def validate(self) -> None:
        """Raise HwaksanError, saying why, when this shape cannot be built."""
        levels = len(self.channels)
        if self.resolution % 2 ** (levels - 1):
            raise HwaksanError(
                f"resolution {self.resolution} is not divisible by 2**{levels - 1} = "
                f"{2 ** (levels - 1)}, which {levels} levels of downsampling need"
            )
        missing = sorted(set(self.attention_resolutions) - set(self.resolutions))
        if missing:
            raise HwaksanError(
                f"attention resolutions {missing} are never reached: at resolution "
                f"{self.resolution} the levels are {self.resolutions}"
            )
        if self.context_layers and (self.context_dim is None or self.context_dim % self.num_heads):
            raise HwaksanError(
                f"context_layers={self.context_layers} needs a context_dim divisible by "
                f"num_heads={self.num_heads}, not {self.context_dim}"
            )
        for c in self.channels:
            if c % self.norm_groups or c % self.num_heads:
                raise HwaksanError(
                    f"channel width {c} is not divisible by norm_groups={self.norm_groups} "
                    f"and num_heads={self.num_heads}"
                )


class _Layer(nn.Module):
    """A ResBlock, then (at attention resolutions) self-attention or a SpatialTransformer."""

    def __init__(self, cfg: UNetConfig, c_in: int, c_out: int, embed_dim: int, attend: bool):
        super().__init__()
        self.res = ResBlock(
            c_in, c_out, embed_dim, cfg.dropout, cfg.norm_groups, cfg.use_scale_shift_norm
        )
        self.attn = _attention(cfg, c_out) if attend else None

    def forward(self, x, emb, context=None, context_mask=None) -> torch.Tensor:
        x = self.res(x, emb)  # (B, C_out, H, W)
        if self.attn is not None:
            x = self.attn(x, context, context_mask)  # (B, C_out, H, W)
        return x


def _attention(cfg: UNetConfig, channels: int) -> nn.Module:
    if cfg.context_dim is None:
        return AttentionBlock(channels, cfg.num_heads, cfg.norm_groups)
    return SpatialTransformer(
        channels, cfg.num_heads, cfg.context_dim, cfg.transformer_depth, cfg.norm_groups
    )


class UNet(nn.Module):
    """model(x_t, t, class_labels=None, context=None, context_mask=None) -> (B, out, H, W)."""

    @classmethod
    def from_config(cls, config: dict) -> UNet:
        """The network a saved `config.to_dict()` describes (how model folders rebuild it)."""
        return cls(UNetConfig.from_dict(config))

    def __init__(self, config: UNetConfig):
        super().__init__()
        config.validate()
        self.config = cfg = config
        c0, embed_dim = cfg.channels[0], 4 * cfg.channels[0]
        self.time_embedding = TimestepEmbedding(c0, embed_dim)
        self.class_embedding = (
            None if cfg.num_classes is None else ClassEmbedding(cfg.num_classes, embed_dim)
        )
        self.context_encoder = (
            ContextEncoder(cfg.context_dim, cfg.context_layers, cfg.num_heads)
            if cfg.context_layers
            else None
        )
        self.conv_in = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)

        self.down = nn.ModuleList()
        skips, c = [c0], c0
        for level, (width, res) in enumerate(zip(cfg.channels, cfg.resolutions)):
            for _ in range(cfg.layers_per_block):
                attend = res in cfg.attention_resolutions
                self.down.append(_Layer(cfg, c, width, embed_dim, attend))
                skips.append(c := width)
            if level < len(cfg.channels) - 1:
                self.down.append(Downsample(c))
                skips.append(c)

        self.mid = nn.ModuleList(
            [_Layer(cfg, c, c, embed_dim, attend=True), _Layer(cfg, c, c, embed_dim, attend=False)]
        )

        self.up = nn.ModuleList()
        for level in reversed(range(len(cfg.channels))):
            width, res = cfg.channels[level], cfg.resolutions[level]
            for _ in range(cfg.layers_per_block + 1):
                attend = res in cfg.attention_resolutions
                self.up.append(_Layer(cfg, c + skips.pop(), width, embed_dim, attend))
                c = width
            if level > 0:
                self.up.append(Upsample(c))

        out_channels = cfg.out_channels * (2 if cfg.learn_sigma else 1)
        self.norm_out = GroupNorm(cfg.norm_groups, c)
        self.conv_out = zero_module(nn.Conv2d(c, out_channels, 3, padding=1))

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C, H, W), t (B,) long or float -> (B, out_channels [* 2], H, W)."""
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # NCHW first conv is a 10x trap
        t = t.reshape(-1).expand(x.shape[0])  # (B,)
        emb = self.time_embedding(t)  # (B, E)
        if self.class_embedding is not None:
            emb = emb + self.class_embedding(class_labels, x.shape[0])  # (B, E)
        elif class_labels is not None:
            raise ValueError("class_labels given to a UNet built without num_classes")
        emb = F.silu(emb)  # (B, E): every ResBlock starts its projection with SiLU
        if context is not None and self.context_encoder is not None:
            context = self.context_encoder(context, context_mask)  # (B, M, context_dim)
        cond = dict(context=context, context_mask=context_mask)

        h = self.conv_in(x)  # (B, C0, H, W)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb, **cond) if isinstance(layer, _Layer) else layer(h)  # (B, C, h, w)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb, **cond)  # (B, C_last, H/2^(L-1), W/2^(L-1))
        for layer in self.up:
            if isinstance(layer, _Layer):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb, **cond)  # (B, C, h, w)
            else:
                h = layer(h)  # (B, C, 2h, 2w)
        return self.conv_out(self.norm_out.silu(h))  # (B, out, H, W)
