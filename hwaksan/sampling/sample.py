"""`hk.sample`: one entry point for every sampler, with diffusers' words and trajectories."""

from __future__ import annotations

from collections.abc import Callable

import torch

from hwaksan.diffusion.parameterization import check_prediction_type
from hwaksan.diffusion.reverse import check_variance_type
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.denoiser import sigma_denoiser
from hwaksan.sampling.hooks import Callback
from hwaksan.sampling.progress import show_progress
from hwaksan.sampling.registry import SamplerSpec, sampler_names, sampler_spec

# The built-in diffusion samplers' names, for older callers; `registry.sampler_names()` is the
# live list (with the consistency models' sampler).
SAMPLERS: tuple[str, ...] = tuple(
    s for s in sampler_names() if sampler_spec(s).family == "diffusion"
)


def check_sample_args(
    sampler: str,
    steps: int,
    spacing: str,
    schedule: NoiseSchedule,
    *,
    eta: float = 0.0,
    prediction_type: str = "epsilon",
    variance_type: str = "fixed_small",
    use_karras_sigmas: bool = False,
    start_step: int = 0,
    set_alpha_to_one: bool = True,
) -> None:
    """One clear ValueError for any argument the samplers cannot honour."""
    spec = sampler_spec(sampler)
    ts.check_steps(steps, spacing, schedule.num_train_timesteps)
    check_prediction_type(prediction_type)
    check_variance_type(variance_type)
    if spec.family == "consistency" and prediction_type != "sample":
        raise ValueError(
            f"sampler {sampler!r} needs a consistency model (prediction_type 'sample'), "
            f"not a {prediction_type} one"
        )
    if use_karras_sigmas and not spec.karras:
        karras = _one_of([s for s in sampler_names() if sampler_spec(s).karras])
        raise ValueError(f"use_karras_sigmas needs {karras}, not {sampler!r}")
    if eta != 0 and "eta" not in spec.options:
        eta_users = "/".join(s.upper() for s in sampler_names() if "eta" in sampler_spec(s).options)
        raise ValueError(f"eta is a {eta_users} option; sampler {sampler!r} does not use it")
    if not set_alpha_to_one and "set_alpha_to_one" not in spec.options:
        raise ValueError(f"set_alpha_to_one=False is a DDIM option; {sampler!r} does not use it")
    if not 0 <= start_step < steps:
        raise ValueError(
            f"start_step must be between 0 and steps - 1 = {steps - 1}, got {start_step}"
        )


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _initial_noise(
    shape: tuple[int, ...], x_T: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    if x_T is None:
        device = generator.device if generator is not None else "cpu"
        return torch.randn(shape, generator=generator, device=device)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape is {tuple(shape)}")
    return x_T


@torch.no_grad()
def sample(
    model: Callable[..., torch.Tensor],
    shape: tuple[int, ...],
    *,
    schedule: NoiseSchedule,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    prediction_type: str = "epsilon",
    timestep_spacing: str = "leading",
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    clip_sample: float | None = None,
    cond: dict | None = None,
    progress: bool | None = None,
    use_karras_sigmas: bool = False,
    variance_type: str = "fixed_small",
    steps_offset: int = 0,
    start_step: int = 0,
    callback: Callback | None = None,
    set_alpha_to_one: bool = True,
) -> torch.Tensor:
    """Draw x0 of `shape` by running `sampler` from x_T (standard normal) for `steps` steps.

    `model(x_t, t, **cond)` gets t of shape [B]: int64 for ddpm/ddim/dpmpp_2m, float32 for
    euler/heun (fractional with Karras sigmas). Same settings (`steps_offset`, `set_alpha_to_one`
    too), same x_T -> same result as diffusers' DDPM/DDIM/DPMSolverMultistep/EulerDiscrete/Heun
    schedulers. `start_step` > 0 skips the first steps: x_T is then the VP x_t = alpha x0 +
    sigma eps at that step's level (`start.noise_to_start`; img2img, SDEdit). `callback` sees
    every step (`hooks.SamplerStep`); a returned tensor replaces x. `progress` None: a terminal bar.
    """
    options = dict(eta=eta, variance_type=variance_type, generator=generator)
    options.update(set_alpha_to_one=set_alpha_to_one)
    check_sample_args(
        sampler, steps, timestep_spacing, schedule, prediction_type=prediction_type,
        use_karras_sigmas=use_karras_sigmas, start_step=start_step,
        eta=eta, variance_type=variance_type, set_alpha_to_one=set_alpha_to_one,
    )  # fmt: skip
    if start_step and x_T is None:
        raise ValueError("start_step > 0 needs x_T: the x_t to start from")
    spec, cond = sampler_spec(sampler), cond or {}

    bound = _checked(model, cond)
    x = _initial_noise(shape, x_T, generator)
    timesteps, sigmas = spec.table(
        schedule, steps, timestep_spacing, steps_offset, use_karras_sigmas
    )
    common = dict(progress=show_progress(progress), start_step=start_step, callback=callback)
    common.update({k: options[k] for k in spec.options})
    if spec.space == "vp":
        x = spec.fn(
            bound, x, timesteps, schedule,
            prediction_type=prediction_type, clip_sample=clip_sample, **common,
        )  # fmt: skip
    else:
        x = x * _sigma_space_scale(spec, sigmas, timestep_spacing, start_step).to(x.dtype)
        x = spec.fn(sigma_denoiser(bound, prediction_type, clip_sample), x, sigmas, timesteps,
                    **common)  # fmt: skip
    _check_finite({"the sample": x}, "in the last sampling step")
    return x


def _checked(model: Callable[..., torch.Tensor], cond: dict) -> Callable[..., torch.Tensor]:
    """`model(x_t, t)` with `cond` bound, stopping where x_t or its output is non-finite."""

    def bound(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(x_t, t, **cond)
        where = f"at the sampling step with timestep t={float(t.flatten()[0]):g}"
        _check_finite({"the sample": x_t, "the model's output": out}, where)
        return out

    return bound


def _check_finite(values: dict[str, torch.Tensor], where: str) -> None:
    """A non-finite sample never becomes an image: stop where x_t or the model's output first
    holds NaN or inf, naming the step."""
    for what, value in values.items():
        if not torch.isfinite(value).all():
            raise HwaksanError(
                f"{what} became non-finite (NaN or inf) {where}; check the model's weights and "
                "the sampler's arguments (eta, guidance scale)"
            )


def _sigma_space_scale(
    spec: SamplerSpec, sigmas: torch.Tensor, spacing: str, start_step: int
) -> torch.Tensor:
    """What turns the VP x_t at step `start_step` into a sigma sampler's x = x0 + sigma eps:
    sqrt(1 + sigma^2), and at step 0 diffusers' `init_noise_sigma` (for parity)."""
    if start_step == 0:
        return init_noise_sigma(spec.name, sigmas, spacing)
    return (1 + sigmas[start_step] ** 2).sqrt()


def init_noise_sigma(sampler: str, sigmas: torch.Tensor, spacing: str) -> torch.Tensor:
    """How a sigma-space sampler scales standard-normal x_T, as diffusers' `init_noise_sigma`.

    Exactly sqrt(1 + sigma_max^2) moves VP noise to sigma_max; diffusers' Euler/Heun use
    sigma_max alone for "linspace"/"trailing" (a 1e-5 relative difference we keep, for parity).
    """
    sigma_max = sigmas.max()
    if spacing in sampler_spec(sampler).sigma_max_spacings:
        return sigma_max
    return (1 + sigma_max**2).sqrt()
