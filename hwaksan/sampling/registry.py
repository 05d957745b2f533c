"""The one table of samplers: a new one (consistency multistep, LCM) is one `register_sampler`.

A `SamplerSpec` says how `hk.sample` runs a sampler function: which space it steps in (how it is
called), which table of levels it visits and which of `hk.sample`'s options it honours; the
argument checks read it too, so no list of names is kept anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.consistency import consistency_table, sample_consistency
from hwaksan.sampling.ddim import sample_ddim
from hwaksan.sampling.ddpm import sample_ddpm
from hwaksan.sampling.dpm_solver import sample_dpmpp_2m
from hwaksan.sampling.euler import sample_euler, sample_heun

SPACES: tuple[str, ...] = ("vp", "sigma")
OPTIONS: tuple[str, ...] = ("eta", "variance_type", "generator", "set_alpha_to_one")
# (schedule, steps, spacing, steps_offset, use_karras_sigmas) -> (timesteps [N], sigmas [N + 1])
Table = Callable[..., "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass(frozen=True)
class SamplerSpec:
    """How `hk.sample` runs one sampler. Every call passes progress, start_step and callback, plus
    the `options` the sampler names; by `space` the rest is
    - "vp": fn(model, x, timesteps, schedule, *, prediction_type, clip_sample, ...), x = alpha x0
      + sigma eps, model(x_t, t) the network's prediction;
    - "sigma": fn(denoise, x, sigmas, timesteps, ...), x = x0 + sigma eps, denoise(x, sigma, t)
      the x0 prediction (Karras et al. 2022, k-diffusion's samplers).
    """

    name: str
    fn: Callable[..., torch.Tensor]
    space: str  # "vp" | "sigma"
    table: Table  # which timesteps (and, for "sigma", sigmas) it visits
    options: tuple[str, ...] = ()  # of OPTIONS: the `hk.sample` arguments passed on to fn
    karras: bool = False  # whether `table` honours use_karras_sigmas
    # Spacings where diffusers scales x_T by sigma_max, not sqrt(1 + sigma_max^2) (Euler/Heun).
    sigma_max_spacings: tuple[str, ...] = ()
    # "diffusion": solves any denoiser's reverse process; "consistency": needs a consistency
    # model's x0 (prediction_type "sample", Song et al. 2023)
    family: str = "diffusion"


_REGISTRY: dict[str, SamplerSpec] = {}


def register_sampler(spec: SamplerSpec, *, replace: bool = False) -> SamplerSpec:
    """Add a sampler under `spec.name` (`replace` to overwrite one); returns the spec."""
    if spec.space not in SPACES:
        raise ValueError(f"unknown sampler space {spec.space!r}; choose one of {', '.join(SPACES)}")
    unknown = set(spec.options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown sampler options {sorted(unknown)}; choose from {OPTIONS}")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"sampler {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def sampler_names() -> tuple[str, ...]:
    """Every registered sampler's name, in registration order."""
    return tuple(_REGISTRY)


def sampler_spec(name: str) -> SamplerSpec:
    """The registered spec of `name`; ValueError naming the choices if there is none."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


_EULER_QUIRK = ("linspace", "trailing")
register_sampler(SamplerSpec("ddpm", sample_ddpm, "vp", ts.discrete_table,
                             options=("variance_type", "generator")))  # fmt: skip
register_sampler(SamplerSpec("ddim", sample_ddim, "vp", ts.discrete_table,
                             options=("eta", "generator", "set_alpha_to_one")))  # fmt: skip
register_sampler(SamplerSpec("dpmpp_2m", sample_dpmpp_2m, "sigma", ts.dpm_sigmas, karras=True))
register_sampler(SamplerSpec("euler", sample_euler, "sigma", ts.euler_sigmas, karras=True,
                             sigma_max_spacings=_EULER_QUIRK))  # fmt: skip
register_sampler(SamplerSpec("heun", sample_heun, "sigma", ts.euler_sigmas, karras=True,
                             sigma_max_spacings=_EULER_QUIRK))  # fmt: skip
# Consistency models start from sigma_max * z as Song et al. 2023 (and diffusers) do.
register_sampler(SamplerSpec("consistency", sample_consistency, "sigma", consistency_table,
                             options=("generator",), family="consistency",
                             sigma_max_spacings=ts.TIMESTEP_SPACINGS))  # fmt: skip
