"""Where a diffusion recipe's samples live: pixels, or an autoencoder's scaled latents.

A space says how images become what the diffusion learns (`encode`) and how the sampler's output
becomes images again (`decode`, for the progress grids). Latent diffusion (Rombach et al. 2022)
scales the latents by `latent_scale` = 1 / std (sec. 4.3.2; Stable Diffusion's 0.18215).
"""

from __future__ import annotations

import torch
from torch import nn


class PixelSpace:
    """The diffusion runs on the images themselves."""

    kind_prefix = ""  # the recipe's "kind" is the conditioner's, as is

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        return samples

    def describe(self) -> dict:
        return {}


class LatentSpace:
    """The diffusion runs on z = E(x) * latent_scale; images are x = D(z / latent_scale)."""

    kind_prefix = "latent_"

    def __init__(self, autoencoder: nn.Module, latent_scale: float) -> None:
        self.autoencoder, self.latent_scale = autoencoder, latent_scale

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Scaled latents [B, c, h, w] of images [B, C, H, W] in [-1, 1] (`encode_latents`: a KL
        autoencoder's posterior mode, a VQ one's pre-quantization latent)."""
        return self.autoencoder.encode_latents(images) * self.latent_scale

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """x = D(z / latent_scale) (Rombach et al. 2022)."""
        self.autoencoder.to(samples.device)
        return self.autoencoder.decode(samples / self.latent_scale)

    def describe(self) -> dict:
        return {"latent_scale": self.latent_scale}
