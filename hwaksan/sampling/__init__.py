"""Samplers as pure functions over a model callable `model(x_t, t, **cond) -> prediction`."""

from hwaksan.sampling.inversion import ddim_invert, slerp
from hwaksan.sampling.sample import SAMPLERS, sample

__all__ = ["SAMPLERS", "ddim_invert", "sample", "slerp"]
