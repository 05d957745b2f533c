"""Samplers as pure functions over a model callable `model(x_t, t, **cond) -> prediction`."""

from hwaksan.sampling.hooks import SamplerStep
from hwaksan.sampling.inversion import ddim_invert, slerp
from hwaksan.sampling.registry import SamplerSpec, register_sampler, sampler_names
from hwaksan.sampling.sample import SAMPLERS, sample
from hwaksan.sampling.start import noise_to_start, start_step_for_strength, timesteps_for

__all__ = [
    "SAMPLERS",
    "SamplerSpec",
    "SamplerStep",
    "ddim_invert",
    "noise_to_start",
    "register_sampler",
    "sample",
    "sampler_names",
    "slerp",
    "start_step_for_strength",
    "timesteps_for",
]
