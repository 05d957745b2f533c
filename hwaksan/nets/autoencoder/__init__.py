"""Image autoencoders for latent diffusion: KL (Rombach et al. 2022) and VQ (Esser et al. 2021).

Both give `encode_latents(x) -> z` [B, C, R/f, R/f] and `decode(z) -> x`; `load_autoencoder`
reads a saved folder or a shipped name ("autoencoder_kl", "autoencoder_vq").
"""

from .base import AutoencoderBase
from .blocks import Decoder, Encoder, ResnetBlock
from .config import AutoencoderConfig
from .io import load_autoencoder, save_autoencoder
from .kl import AutoencoderKL, DiagonalGaussian
from .vq import Quantized, VectorQuantizer, VQModel

__all__ = [
    "AutoencoderBase",
    "AutoencoderConfig",
    "AutoencoderKL",
    "Decoder",
    "DiagonalGaussian",
    "Encoder",
    "Quantized",
    "ResnetBlock",
    "VQModel",
    "VectorQuantizer",
    "load_autoencoder",
    "save_autoencoder",
]
