"""ControlNet (Zhang et al. 2023): a trainable copy of a frozen U-Net's encoder and middle block
that reads a control image (a segmentation mask, an edge map) and steers the frozen U-Net.

`controlnet(x_t, t, controlnet_cond, context=...) -> (down residuals, mid residual)` (diffusers'
`down_block_res_samples`, `mid_block_res_sample`). The hint encoder turns the control image
(B, 3, 64, 64) in [0, 1] into a feature map at the latent resolution, added to the copy's
`conv_in` output; each of the copy's skips and its middle output passes a zero-initialized 1x1
convolution ("zero convolution", sec. 3.1), whose outputs the frozen U-Net adds to its own skips
and middle (`down_block_additional_residuals`, `mid_block_additional_residual` of
`UNet.forward`). At initialization every zero convolution outputs 0, so the controlled U-Net is
the base exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.resnet import zero_module
from hwaksan.nets.unet_config import UNetConfig
from hwaksan.nets.unet_encoder import UNetEncoder


@dataclass
class ControlNetConfig(JSONConfig):
    """The copied encoder's shape (the base U-Net's config) and the hint encoder's."""

    config_name = "ControlNet"

    unet: UNetConfig = field(default_factory=UNetConfig)  # the base U-Net's config
    conditioning_channels: int = 3  # channels of the control image (RGB, as diffusers)
    conditioning_resolution: int = 64  # H == W of the control image (the decoded image's side)
    hint_channels: tuple[int, ...] = (16, 32)  # hint encoder widths, one per halving

    def validate(self) -> None:
        """The control image must halve down to the latent resolution in `len(hint_channels)`
        steps: conditioning_resolution = unet.resolution * 2^len(hint_channels)."""
        ratio = self.conditioning_resolution / self.unet.resolution
        if ratio < 1 or 2 ** len(self.hint_channels) != ratio or not math.log2(ratio).is_integer():
            raise HwaksanError(
                f"a ControlNet with {len(self.hint_channels)} hint halvings maps a "
                f"{self.unet.resolution * 2 ** len(self.hint_channels)} px control image onto a "
                f"{self.unet.resolution} px latent, not {self.conditioning_resolution} px"
            )


class HintEncoder(nn.Module):
    """Control image (B, 3, R, R) in [0, 1] -> (B, C0, r, r): a few 3x3 convolutions, each width
    then a stride-2 halving, ending in a zero convolution (diffusers'
    `ControlNetConditioningEmbedding`; ControlNet's "tiny network E", sec. 3.2)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], out_channels: int):
        super().__init__()
        c = widths[0] if widths else 16  # no halvings: one 3x3 convolution of 16 channels
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.blocks = nn.ModuleList()
        for width in widths:
            self.blocks.append(nn.Conv2d(c, width, 3, padding=1))
            self.blocks.append(nn.Conv2d(width, width, 3, padding=1, stride=2))
            c = width
        self.conv_out = zero_module(nn.Conv2d(c, out_channels, 3, padding=1))

    def forward(self, hint: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv_in(hint))  # (B, w0, R, R)
        for conv in self.blocks:
            h = F.silu(conv(h))  # (B, w, R / 2^k, R / 2^k)
        return self.conv_out(h)  # (B, C0, r, r)


class ControlNet(nn.Module):
    """A `UNetEncoder` copy (with the middle) + `HintEncoder` + zero 1x1 convolutions per skip
    (`controlnet_down_blocks`) and for the middle (`controlnet_mid_block`), diffusers' names."""

    def __init__(self, config: ControlNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = UNetEncoder(config.unet, mid=True)
        c0 = config.unet.channels[0]
        self.hint_encoder = HintEncoder(
            config.conditioning_channels, tuple(config.hint_channels), c0
        )
        self.controlnet_down_blocks = nn.ModuleList(
            zero_module(nn.Conv2d(c, c, 1)) for c in self.encoder.skip_channels
        )
        c_last = self.encoder.skip_channels[-1]
        self.controlnet_mid_block = zero_module(nn.Conv2d(c_last, c_last, 1))

    @classmethod
    def from_config(cls, config: dict) -> ControlNet:
        return cls(ControlNetConfig.from_dict(config))

    @classmethod
    def from_unet(
        cls,
        unet: nn.Module,
        hint_channels: tuple[int, ...] = (16, 32),
        conditioning_channels: int = 3,
    ) -> ControlNet:
        """A fresh ControlNet for `unet`: its encoder and middle copied from the base's weights
        (sec. 3.2: "trainable copy"), every zero convolution at 0 (diffusers' `from_unet`). The
        control image is the latent side times 2 per hint halving (64 px for 16x16 latents)."""
        config = ControlNetConfig(
            unet=unet.config,
            conditioning_channels=conditioning_channels,
            conditioning_resolution=unet.config.resolution * 2 ** len(hint_channels),
            hint_channels=tuple(hint_channels),
        )
        controlnet = cls(config)
        base = unet.state_dict()
        own = controlnet.encoder.state_dict()
        controlnet.encoder.load_state_dict({k: base[k] for k in own})
        return controlnet.to(next(unet.parameters()).device)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        controlnet_cond: torch.Tensor,
        class_labels: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        *,
        conditioning_scale: float = 1.0,
        added_embedding: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x_t (B, C, h, w), t (B,), controlnet_cond (B, 3, R, R) in [0, 1] -> (one residual per
        skip of the base U-Net, the middle's residual), each times `conditioning_scale`."""
        hint = self.hint_encoder(controlnet_cond.to(x.dtype))  # (B, C0, h, w)
        h, skips, _, _ = self.encoder.encode(
            x, t, class_labels, context, context_mask,
            added_embedding=added_embedding, conv_in_residual=hint,
        )  # fmt: skip
        down = [
            zero_conv(s) * conditioning_scale
            for zero_conv, s in zip(self.controlnet_down_blocks, skips)
        ]  # (B, C_i, h_i, w_i) each
        mid = self.controlnet_mid_block(h) * conditioning_scale  # (B, C_last, h_L, w_L)
        return down, mid

    def fits(self, unet: nn.Module) -> bool:
        """Whether this ControlNet's copied encoder has `unet`'s shape."""
        return getattr(unet, "config", None) == self.config.unet
