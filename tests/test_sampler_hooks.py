"""Sampler hooks: a callback that sees (and may replace) every step, starting part-way
(`start_step`), and the one sampler table a new sampler registers in."""

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)

import hwaksan as hk
from hwaksan.sampling import registry
from hwaksan.sampling.denoiser import predict_x0_eps
from hwaksan.sampling.hooks import vp_hook

SCHEDULE = hk.NoiseSchedule.linear(1000, 1e-4, 0.02)
SAMPLERS = ["ddpm", "ddim", "dpmpp_2m", "euler", "heun"]
SHAPE = (2, 3, 4, 4)


def model(x, t):
    """Nonlinear in x and t, and each pixel sees the others' mean, so a wrong timestep, scale or
    order cannot hide, and a region pinned by a callback is felt by the rest."""
    mixed = x * 0.7 + 0.5 * x.mean((1, 2, 3), keepdim=True)  # (B, C, H, W)
    return torch.tanh(mixed + t.float().view(-1, 1, 1, 1) / 1000 - 0.3)


def x_T():
    return torch.randn(*SHAPE, generator=torch.Generator().manual_seed(0))


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def run(sampler, steps=6, **kw):
    kw.setdefault("x_T", x_T())
    kw.setdefault("generator", torch.Generator().manual_seed(1))
    kw.setdefault("timestep_spacing", "trailing")
    return hk.sample(model, SHAPE, schedule=SCHEDULE, sampler=sampler, steps=steps, **kw)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_callback_sees_every_step_in_order(sampler):
    seen = []
    out = run(sampler, callback=seen.append, timestep_spacing="leading")  # ends on a clean x
    timesteps, _ = hk.sampling.timesteps_for(sampler, SCHEDULE, 6, "leading")
    assert [s.index for s in seen] == list(range(6))
    assert torch.equal(torch.stack([s.timestep for s in seen]), timesteps)
    assert torch.equal(seen[-1].x, out)  # the last step's x is the sample returned
    assert (seen[-1].alpha.item(), seen[-1].sigma.item()) == (1.0, 0.0)
    assert all(s.denoised.shape == SHAPE for s in seen)
    # Watching changes nothing: the same bits as without a callback.
    assert torch.equal(out, run(sampler, timestep_spacing="leading"))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_callback_x_is_variance_preserving(sampler):
    """Each step's (alpha, sigma) is a VP level (alpha^2 + sigma^2 = 1) that gets cleaner."""
    seen = []
    run(sampler, callback=seen.append)
    alphas = torch.stack([s.alpha for s in seen])
    sigmas = torch.stack([s.sigma for s in seen])
    assert torch.allclose(alphas**2 + sigmas**2, torch.ones_like(alphas), atol=1e-12)
    assert bool((alphas[1:] > alphas[:-1]).all())


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("k", [1, 4])
def test_start_step_runs_the_tail_of_the_full_trajectory(sampler, k):
    """start_step=k from the x (and generator state) a full run had after k steps gives the full
    run's result: exactly for the VP samplers, to rounding for the sigma ones (x is handed over
    in VP and scaled back). DPM-Solver++(2M) restarts first order, as diffusers' img2img does,
    so for it only the first-order-restart equality of `test_start_step_matches_diffusers` holds."""
    states = {}

    def keep(s):
        states[s.index] = (s.x.clone(), generator.get_state())

    generator = torch.Generator().manual_seed(1)
    full = run(sampler, callback=keep, generator=generator)
    x_k, g_state = states[k - 1]
    tail_generator = torch.Generator()
    tail_generator.set_state(g_state)
    tail = run(sampler, x_T=x_k, start_step=k, generator=tail_generator)
    if sampler in ("ddpm", "ddim"):
        assert torch.equal(tail, full)
    elif sampler == "dpmpp_2m":
        assert rel_err(tail, full) > 1e-6  # first order at step k, where the full run had history
    else:
        assert rel_err(tail, full) < 1e-6


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_eta_tail_lines_up_with_the_noise_stream(eta):
    states = {}

    def keep(s):
        states[s.index] = (s.x, generator.get_state())

    generator = torch.Generator().manual_seed(1)
    full = run("ddim", eta=eta, generator=generator, callback=keep)
    x_k, g_state = states[2]
    tail_generator = torch.Generator()
    tail_generator.set_state(g_state)
    assert torch.equal(run("ddim", eta=eta, x_T=x_k, start_step=3, generator=tail_generator), full)


SIGMA_SCHEDULERS = {
    "euler": EulerDiscreteScheduler,
    "heun": HeunDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
}


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("sampler", ["ddim", *SIGMA_SCHEDULERS])
def test_start_step_matches_diffusers_img2img(sampler, spacing):
    """noise_to_start + start_step = diffusers' img2img loop: `add_noise` at timesteps[k], then
    the scheduler from its k-th step (`set_begin_index`; Heun's table is interleaved)."""
    steps, k = 8, 3
    x0 = torch.rand(*SHAPE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    noise = x_T()
    cls = SIGMA_SCHEDULERS.get(sampler, DDIMScheduler)
    options = dict(clip_sample=False) if sampler == "ddim" else {}
    ref = cls(beta_start=1e-4, beta_end=0.02, beta_schedule="linear", timestep_spacing=spacing,
              **options)  # fmt: skip
    ref.set_timesteps(steps)
    start = k * ref.order
    if hasattr(ref, "set_begin_index"):  # the stateful ones (DDIM's step reads only t)
        ref.set_begin_index(start)
    x = ref.add_noise(x0, noise, ref.timesteps[start : start + 1])
    for t in ref.timesteps[start:]:
        x = ref.step(model(ref.scale_model_input(x, t), t.expand(2)), t, x).prev_sample
    x_k = hk.sampling.noise_to_start(
        x0, noise, schedule=SCHEDULE, sampler=sampler, steps=steps, start_step=k,
        timestep_spacing=spacing,
    )  # fmt: skip
    ours = hk.sample(model, SHAPE, schedule=SCHEDULE, sampler=sampler, steps=steps, x_T=x_k,
                     start_step=k, timestep_spacing=spacing)  # fmt: skip
    assert rel_err(ours, x) < 1e-4


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_replacing_callback_steers_the_trajectory(sampler):
    """A returned tensor replaces x: pinning a region to the known image noised to each step's
    level (RePaint-style inpainting) ends on the known image exactly, and replacing x after step
    k - 1 equals starting there (for the one-step samplers)."""
    known = torch.full(SHAPE, 0.25)

    def pin(s):
        x = s.x.clone()
        x[..., :2] = (s.alpha * known + s.sigma * x_T()).float()[..., :2]
        return x

    pinned = run(sampler, callback=pin, timestep_spacing="leading")  # ends on a clean x
    free = run(sampler, timestep_spacing="leading")
    assert torch.equal(pinned[..., :2], known[..., :2])
    assert rel_err(pinned[..., 2:], free[..., 2:]) > 1e-3  # the rest felt the pinned region

    k, swap = 2, torch.randn(*SHAPE, generator=torch.Generator().manual_seed(5))
    generator, tail_generator = torch.Generator().manual_seed(1), torch.Generator()

    def swap_after_k_steps(s):
        if s.index == k - 1:
            tail_generator.set_state(generator.get_state())  # DDPM's noise stream lines up
            return swap
        return None

    swapped = run(sampler, callback=swap_after_k_steps, generator=generator)
    started = run(sampler, x_T=swap, start_step=k, generator=tail_generator)
    if sampler in ("ddpm", "ddim"):
        assert torch.equal(swapped, started)
    elif sampler in ("euler", "heun"):
        assert rel_err(swapped, started) < 1e-6
    # DPM-Solver++(2M) keeps the history it had before the swap; a fresh start has none.


def test_noise_to_start_and_strength():
    x0, noise = torch.ones(*SHAPE), x_T()
    timesteps, _ = hk.sampling.timesteps_for("ddim", SCHEDULE, 10)
    x_k = hk.sampling.noise_to_start(x0, noise, schedule=SCHEDULE, steps=10, start_step=4)
    assert torch.equal(x_k, SCHEDULE.add_noise(x0, noise, timesteps[4].expand(2)))
    # A sigma sampler's level: x0 + sigma noise, seen as VP.
    _, sigmas = hk.sampling.timesteps_for("euler", SCHEDULE, 10, use_karras_sigmas=True)
    x_k = hk.sampling.noise_to_start(x0, noise, schedule=SCHEDULE, sampler="euler", steps=10,
                                     start_step=4, use_karras_sigmas=True)  # fmt: skip
    ve = (x0 + sigmas[4] * noise.double()).float()
    assert torch.allclose(x_k * (1 + sigmas[4] ** 2).sqrt().float(), ve, atol=1e-5)
    # diffusers' get_timesteps: run the last int(steps * strength) steps.
    starts = [hk.sampling.start_step_for_strength(50, s) for s in (1.0, 0.8, 0.75, 0.3)]
    assert starts == [0, 10, 13, 35]
    for strength in (0.0, 0.01, 1.5):
        with pytest.raises(ValueError, match="strength"):
            hk.sampling.start_step_for_strength(50, strength)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(start_step=6), "start_step must be between"),
        (dict(start_step=-1), "start_step must be between"),
        (dict(start_step=2, x_T=None), "needs x_T"),
    ],
)
def test_bad_start_step_raises_one_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run("ddim", **kwargs)


def sample_x0_jump(model, x, timesteps, schedule, *, prediction_type, clip_sample, progress,
                   start_step, callback, eta):  # fmt: skip
    """A tiny attachment: one model call at timesteps[start_step], then land on its x0 (and
    shift it by eta, so an option visibly reaches the sampler)."""
    t = timesteps[start_step]
    x0, _ = predict_x0_eps(model, x, t, schedule, prediction_type, clip_sample)
    return vp_hook(callback, start_step, t, x0 + eta, x0, schedule, torch.tensor(-1))


def test_a_registered_sampler_runs_through_hk_sample(monkeypatch):
    spec = hk.sampling.SamplerSpec(
        "x0_jump", sample_x0_jump, "vp", registry.ts.discrete_table, options=("eta",)
    )
    monkeypatch.setitem(registry._REGISTRY, "x0_jump", spec)
    assert "x0_jump" in hk.sampling.sampler_names()
    seen = []
    out = run("x0_jump", eta=0.5, callback=seen.append)
    t = hk.sampling.timesteps_for("x0_jump", SCHEDULE, 6, "trailing")[0][0]
    x0 = SCHEDULE.predict_x0(model(x_T(), t.expand(2)), x_T(), t.expand(2), "epsilon")
    assert torch.equal(out, x0 + 0.5)
    assert [s.index for s in seen] == [0]
    with pytest.raises(ValueError, match="use_karras_sigmas needs dpmpp_2m, euler or heun"):
        run("x0_jump", use_karras_sigmas=True)
    with pytest.raises(ValueError, match="eta is a DDIM/X0_JUMP option"):
        run("euler", eta=0.5)


def test_register_sampler_refuses_a_clash_and_a_bad_spec():
    ddim = registry.sampler_spec("ddim")
    with pytest.raises(ValueError, match="already registered"):
        hk.sampling.register_sampler(ddim)
    with pytest.raises(ValueError, match="unknown sampler space"):
        hk.sampling.register_sampler(hk.sampling.SamplerSpec("x", ddim.fn, "ve", ddim.table))
    with pytest.raises(ValueError, match="unknown sampler options"):
        hk.sampling.register_sampler(
            hk.sampling.SamplerSpec("x", ddim.fn, "vp", ddim.table, options=("s_churn",))
        )
    assert hk.sampling.sampler_names() == (*SAMPLERS, "consistency")
