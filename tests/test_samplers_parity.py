"""Every sampler against the diffusers scheduler of the same name: same model, same x_T."""

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)

import hwaksan as hk

BETAS = dict(beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
SCHEDULE = hk.NoiseSchedule.linear(1000, 1e-4, 0.02)


def model(x, t):
    """Nonlinear in x and t, so a wrong timestep, scale or order cannot hide."""
    return torch.tanh(x * 0.7 + t.float().view(-1, 1, 1, 1) / 1000 - 0.3)


def theirs(scheduler, x_T, steps, generator=None, **step_kw):
    """The loop diffusers' pipelines run: init_noise_sigma, scale_model_input, step."""
    scheduler.set_timesteps(steps)
    x = x_T * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = model(scheduler.scale_model_input(x, t), t.expand(x.shape[0]))
        if generator is not None:
            step_kw["generator"] = generator
        x = scheduler.step(out, t, x, **step_kw).prev_sample
    return x


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def x_T():
    return torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))


SIGMA_SCHEDULERS = {
    "euler": EulerDiscreteScheduler,
    "heun": HeunDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
}
SPACINGS = ["leading", "trailing", "linspace"]
PREDICTIONS = ["epsilon", "v_prediction"]


@pytest.mark.parametrize("steps", [7, 10])
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("karras", [False, True])
@pytest.mark.parametrize("sampler", list(SIGMA_SCHEDULERS))
def test_sigma_samplers_match_diffusers(sampler, karras, spacing, prediction_type, steps):
    ref_scheduler = SIGMA_SCHEDULERS[sampler](
        **BETAS, prediction_type=prediction_type, timestep_spacing=spacing, use_karras_sigmas=karras
    )
    ref = theirs(ref_scheduler, x_T(), steps)
    ours = hk.sample(
        model, ref.shape, schedule=SCHEDULE, sampler=sampler, steps=steps, x_T=x_T(),
        prediction_type=prediction_type, timestep_spacing=spacing, use_karras_sigmas=karras,
    )  # fmt: skip
    assert rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [7, 10])
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_matches_diffusers(spacing, prediction_type, steps, eta):
    ref_scheduler = DDIMScheduler(
        **BETAS, prediction_type=prediction_type, timestep_spacing=spacing,
        clip_sample=False, set_alpha_to_one=True,
    )  # fmt: skip
    ref = theirs(ref_scheduler, x_T(), steps, torch.Generator().manual_seed(1), eta=eta)
    ours = hk.sample(
        model, ref.shape, schedule=SCHEDULE, sampler="ddim", steps=steps, eta=eta, x_T=x_T(),
        prediction_type=prediction_type, timestep_spacing=spacing,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    assert rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [7, 10])
def test_ddpm_matches_diffusers_with_the_same_noise(variance_type, spacing, steps):
    """diffusers draws one noise per step with t > 0, so one seeded generator feeds both."""
    if spacing == "trailing" and variance_type == "fixed_large":
        # diffusers adds noise even on the last step (t = T/N - 1 > 0, variance 1 - a_t);
        # Ho et al.'s Alg. 2 (and we) return the mean there.
        pytest.skip("diffusers' fixed_large adds noise on trailing's last step")
    ref_scheduler = DDPMScheduler(
        **BETAS, variance_type=variance_type, timestep_spacing=spacing, clip_sample=False
    )
    ref = theirs(ref_scheduler, x_T(), steps, torch.Generator().manual_seed(2))
    ours = hk.sample(
        model, ref.shape, schedule=SCHEDULE, sampler="ddpm", steps=steps, x_T=x_T(),
        timestep_spacing=spacing, variance_type=variance_type,
        generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    assert rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize("steps_offset", [0, 1])
def test_ddim_without_alpha_one_matches_diffusers(steps_offset):
    """set_alpha_to_one=False (Stable Diffusion's configs): the last step lands on t = 0."""
    ref_scheduler = DDIMScheduler(
        **BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=steps_offset
    )
    ref = theirs(ref_scheduler, x_T(), 10)
    ours = hk.sample(
        model, ref.shape, schedule=SCHEDULE, sampler="ddim", steps=10, x_T=x_T(),
        steps_offset=steps_offset, set_alpha_to_one=False,
    )  # fmt: skip
    assert rel_err(ours, ref) < 1e-4
    with pytest.raises(ValueError, match="set_alpha_to_one=False is a DDIM option"):
        hk.sample(model, ref.shape, schedule=SCHEDULE, sampler="euler", set_alpha_to_one=False)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_clip_sample_matches_diffusers(sampler):
    """clip_sample=c clamps the x0 prediction to [-c, c], as clip_sample_range does."""
    cls = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
    big = lambda x, t: 3 * model(x, t)  # noqa: E731 — big enough that clipping bites
    ref_scheduler = cls(**BETAS, clip_sample=True, clip_sample_range=0.5, prediction_type="sample")
    ref_scheduler.set_timesteps(10)
    x, g = x_T(), torch.Generator().manual_seed(3)
    for t in ref_scheduler.timesteps:
        kw = {"generator": g} if sampler == "ddpm" else {}
        x = ref_scheduler.step(big(x, t.expand(2)), t, x, **kw).prev_sample
    ours = hk.sample(
        big, x.shape, schedule=SCHEDULE, sampler=sampler, steps=10, x_T=x_T(), clip_sample=0.5,
        prediction_type="sample", generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert rel_err(ours, x) < 1e-4
    unclipped = hk.sample(
        big, x.shape, schedule=SCHEDULE, sampler=sampler, steps=10, x_T=x_T(),
        prediction_type="sample", generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert rel_err(unclipped, x) > 1e-2  # clipping did change the result


def test_steps_offset_matches_diffusers():
    ref_scheduler = DDIMScheduler(**BETAS, steps_offset=1, clip_sample=False)
    ref = theirs(ref_scheduler, x_T(), 10)
    ours = hk.sample(model, ref.shape, schedule=SCHEDULE, steps=10, x_T=x_T(), steps_offset=1)
    assert rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sampler="plms"), "unknown sampler"),
        (dict(steps=0), "steps must be between"),
        (dict(steps=1001), "steps must be between"),
        (dict(timestep_spacing="even"), "unknown timestep_spacing"),
        (dict(prediction_type="score"), "unknown prediction_type"),
        (dict(sampler="ddim", use_karras_sigmas=True), "use_karras_sigmas"),
        (dict(sampler="euler", eta=0.5), "eta"),
    ],
)
def test_bad_arguments_raise_one_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hk.sample(model, (1, 3, 4, 4), schedule=SCHEDULE, **kwargs)


@pytest.mark.parametrize(
    "sampler, calls, dtype",
    [("ddpm", 5, torch.int64), ("ddim", 5, torch.int64), ("dpmpp_2m", 5, torch.int64),
     ("euler", 5, torch.float32), ("heun", 9, torch.float32)],
)  # fmt: skip
def test_model_sees_cond_and_documented_timesteps(sampler, calls, dtype):
    """cond reaches the model as keywords; t is [B] of the documented dtype; one call per step
    (Heun: 2N - 1)."""
    seen = []

    def conditioned(x, t, label):
        seen.append((label, t.shape, t.dtype))
        return model(x, t)

    hk.sample(
        conditioned, (2, 3, 4, 4), schedule=SCHEDULE, sampler=sampler, steps=5,
        cond={"label": 7}, progress=True,
    )  # fmt: skip
    assert seen == [(7, torch.Size([2]), dtype)] * calls
