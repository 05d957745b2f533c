"""The DDPM / ADM U-Net (Ho et al. 2020; Dhariwal & Nichol 2021) with optional class labels and
cross-attention to a context (Rombach et al. 2022): `UNet(UNetConfig(...))(x, t) -> prediction`.

Down path of ResBlocks (+ attention at chosen resolutions) and strided convs, a middle of
ResBlock-attention-ResBlock, an up path that concatenates the skips; the output conv starts at
zero. The embeddings, down path and middle are `UNetEncoder` (nets/unet_encoder.py), which this
class extends with the up path, so the state-dict keys are those of one flat U-Net. Attachments
enter as optional inputs: ControlNet's residuals, an added embedding, per-call attention keyword
arguments, extra input channels. Memory format is a switch (`channels_last`, activations only):
on this CPU it won in fp32 and NCHW won in bf16 (benchmarks/results/train_throughput.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.norm import GroupNorm
from hwaksan.nets.resnet import Upsample, zero_module
from hwaksan.nets.unet_config import UNetConfig
from hwaksan.nets.unet_encoder import UNetEncoder, _Layer

__all__ = ["UNet", "UNetConfig"]


class UNet(UNetEncoder):
    """model(x_t, t, class_labels=None, context=None, context_mask=None) -> (B, out, H, W)."""

    @classmethod
    def from_config(cls, config: dict) -> UNet:
        """The network a saved `config.to_dict()` describes (how model folders rebuild it)."""
        return cls(UNetConfig.from_dict(config))

    def __init__(self, config: UNetConfig):
        config.validate()
        super().__init__(config)
        cfg, embed_dim = config, self.embed_dim
        skips, c = list(self.skip_channels), self.skip_channels[-1]
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
        *,
        down_block_additional_residuals: Sequence[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        added_embedding: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        concat: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, C, H, W), t (B,) long or float -> (B, out_channels [* 2], H, W).

        Attachments' inputs (diffusers' names), each costing nothing when absent:
        `down_block_additional_residuals`, one per skip (`skip_channels`), are added to the skips
        and `mid_block_additional_residual` to the middle's output (ControlNet); `added_embedding`
        (B, embed_dim) to the time embedding before its SiLU; `cross_attention_kwargs` go to every
        attention processor; `concat` (B, concat_channels, H, W) is appended to x's channels.
        """
        h, skips, emb, cond = self.encode(
            x, t, class_labels, context, context_mask, added_embedding=added_embedding,
            cross_attention_kwargs=cross_attention_kwargs, concat=concat,
        )  # fmt: skip
        if down_block_additional_residuals is not None:
            skips = self._add_residuals(skips, down_block_additional_residuals)
        if mid_block_additional_residual is not None:
            h = h + mid_block_additional_residual  # (B, C_last, H/2^(L-1), W/2^(L-1))
        for layer in self.up:
            if isinstance(layer, _Layer):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb, **cond)  # (B, C, h, w)
            else:
                h = layer(h)  # (B, C, 2h, 2w)
        return self.conv_out(self.norm_out.silu(h))  # (B, out, H, W)

    def _add_residuals(self, skips: list, residuals: Sequence[torch.Tensor]) -> list:
        """skip_i + residual_i for every skip connection (ControlNet's down-block residuals)."""
        if len(residuals) != len(skips):
            raise HwaksanError(
                f"down_block_additional_residuals has {len(residuals)} tensors; this U-Net has "
                f"{len(skips)} skip connections (channels {self.skip_channels})"
            )
        return [s + r for s, r in zip(skips, residuals)]  # (B, C_i, h_i, w_i) each
