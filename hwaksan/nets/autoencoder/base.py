"""What the KL and VQ autoencoders have in common: config, latent shape checks, last layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from hwaksan.errors import HwaksanError

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


def latent_shape(autoencoder: nn.Module, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H / f, W / f): the latents `autoencoder` makes of images of `image_shape`."""
    f = autoencoder.downsample_factor
    _, height, width = image_shape
    if height % f or width % f:
        raise HwaksanError(
            f"images of {height}x{width} px do not fit an autoencoder with downsampling factor "
            f"{f}: height and width must be multiples of {f}"
        )
    return (autoencoder.latent_channels, height // f, width // f)


def check_latent_fit(
    autoencoder: nn.Module,
    sample_shape: tuple[int, int, int],
    image_shape: tuple[int, int, int],
    unet: nn.Module | None = None,
) -> None:
    """HwaksanError unless latents of `sample_shape` are what `autoencoder` makes of images of
    `image_shape` (and what `unet`, if it has a config, denoises). A decoder that does not state
    its `downsample_factor` and `latent_channels` (a stand-in) is trusted."""
    if not all(hasattr(autoencoder, a) for a in ("downsample_factor", "latent_channels")):
        return
    expected = latent_shape(autoencoder, image_shape)
    if tuple(sample_shape) != expected:
        f = autoencoder.downsample_factor
        raise HwaksanError(
            f"latent shape {tuple(sample_shape)} does not fit the autoencoder: its latents of "
            f"{image_shape[1]}x{image_shape[2]} px images are {expected} "
            f"({autoencoder.latent_channels} channels, downsampling factor {f})"
        )
    config = getattr(unet, "config", None)
    got = (getattr(config, "in_channels", None), getattr(config, "resolution", None))
    if config is not None and got != (expected[0], expected[1]):
        raise HwaksanError(
            f"the U-Net takes {got[0]} channels at {got[1]} px, but the latents are {expected}"
        )
