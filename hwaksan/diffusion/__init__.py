"""The noise process, parameterizations, losses and likelihood — no networks, no data."""

from hwaksan.diffusion.exact import GaussianDenoiser, MixtureDenoiser
from hwaksan.diffusion.likelihood import nll_bits_per_dim
from hwaksan.diffusion.losses import diffusion_loss, hybrid_loss, min_snr_weight
from hwaksan.diffusion.reverse import ReverseStep, p_mean_variance
from hwaksan.diffusion.schedule import NoiseSchedule, ScheduleConfig, StridedPosterior
from hwaksan.diffusion.vlb import prior_bpd, vlb_terms

__all__ = [
    "GaussianDenoiser",
    "MixtureDenoiser",
    "NoiseSchedule",
    "ReverseStep",
    "ScheduleConfig",
    "StridedPosterior",
    "diffusion_loss",
    "hybrid_loss",
    "min_snr_weight",
    "nll_bits_per_dim",
    "p_mean_variance",
    "prior_bpd",
    "vlb_terms",
]
