"""The KL-regularized autoencoder of latent diffusion (Rombach et al. 2022, sec. 3 and app. G).

The encoder outputs a diagonal Gaussian q(z | x) = N(mean, exp(logvar)); training samples it with
the reparameterization trick (Kingma & Welling 2014) and pays a small KL to N(0, I).
"""

from __future__ import annotations

import torch

from .base import AutoencoderBase
from .blocks import Decoder, Encoder
from .config import AutoencoderConfig


class DiagonalGaussian:
    """q(z | x) with mean and log-variance [B, C, h, w] (logvar clamped to [-30, 20], as LDM)."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)  # (B, C, h, w) each
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + std * eps (the reparameterization trick)."""
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per example [B], summed over C, h, w (Kingma & Welling 2014, app. B)."""
        return 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar).sum((1, 2, 3))


class AutoencoderKL(AutoencoderBase):
    """x [B, 3, R, R] in [-1, 1] <-> z [B, latent_channels, R/f, R/f] via a Gaussian posterior."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = Encoder(config, 2 * config.latent_channels)  # mean and logvar
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.encoder(x))

    def encode_latents(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A posterior sample (the mode when `generator` is None): [B, C, R/f, R/f]."""
        posterior = self.encode(x)
        return posterior.mode() if generator is None else posterior.sample(generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, sample_posterior: bool = True
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """(reconstruction, posterior); training decodes a sample, evaluation the mode."""
        posterior = self.encode(x)
        z = posterior.sample() if sample_posterior else posterior.mode()
        return self.decode(z), posterior
