"""What the KL and VQ autoencoders have in common: config, latent shape checks, last layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from .config import AutoencoderConfig


class AutoencoderBase(nn.Module):
    """An image autoencoder with `encode_latents(x) -> z` and `decode(z) -> x` (the latent
    diffusion contract); subclasses build `encoder` and `decoder`."""

    config: AutoencoderConfig

    @classmethod
    def from_config(cls, d: dict) -> AutoencoderBase:
        return cls(AutoencoderConfig.from_dict(d))

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, H/f, W/f) of the latents of the images this autoencoder is built for."""
        side = self.config.resolution // self.downsample_factor
        return (self.latent_channels, side, side)

    def last_layer(self) -> torch.Tensor:
        """The decoder's last weight: where the adaptive GAN weight compares gradients."""
        return self.decoder.conv_out.weight
