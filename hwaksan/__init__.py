"""hwaksan (확산, "diffusion"): the diffusion-model family end to end, readable and measured.

The public API (see ARCHITECTURE.md): `NoiseSchedule`, `sample`, `ddim_invert`, `slerp`,
`nll_bits_per_dim`, `load`.
"""

from hwaksan.diffusion import NoiseSchedule, ScheduleConfig, nll_bits_per_dim
from hwaksan.model_folder import load
from hwaksan.nets import ControlNet, UNet, UNetConfig
from hwaksan.nets.autoencoder import AutoencoderKL, VQModel, load_autoencoder
from hwaksan.nets.classifier import NoisyClassifier, load_classifier
from hwaksan.nets.text import MiniCLIP, TextEncoding, build_text_encoder, load_text_encoder
from hwaksan.pipeline import Pipeline
from hwaksan.sampling import ddim_invert, sample, slerp

__version__ = "0.1.0"

__all__ = [
    "Pipeline",
    "load",
    "NoiseSchedule",
    "ScheduleConfig",
    "UNet",
    "UNetConfig",
    "ControlNet",
    "AutoencoderKL",
    "VQModel",
    "load_autoencoder",
    "NoisyClassifier",
    "load_classifier",
    "MiniCLIP",
    "TextEncoding",
    "build_text_encoder",
    "load_text_encoder",
    "__version__",
    "nll_bits_per_dim",
    "ddim_invert",
    "sample",
    "slerp",
]
