"""p_mean_variance against diffusers' DDPMScheduler.step and against the schedule's posterior."""

import pytest
import torch
from diffusers import DDPMScheduler

import hwaksan as hk
from hwaksan.diffusion import p_mean_variance


def _diffusers_mean_std(ref, out, t, x):
    """diffusers' step returns mean + std * noise; two noise seeds recover mean and std."""
    draws = []
    for seed in (1, 2):
        prev = ref.step(out, t, x, generator=torch.Generator().manual_seed(seed)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        draws.append((prev, noise))
    (p1, n1), (p2, n2) = draws
    std = (p1 - p2) / (n1 - n2)
    return p1 - std * n1, std


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "learned_range"])
@pytest.mark.parametrize("kind", ["epsilon", "sample", "v_prediction"])
def test_strided_steps_match_diffusers_ddpm(variance_type, kind):
    """Same mean and standard deviation as DDPMScheduler with 20 "leading" steps of 1000."""
    schedule = hk.NoiseSchedule.linear(1000)
    ref = DDPMScheduler(
        num_train_timesteps=1000,
        variance_type=variance_type,
        prediction_type=kind,
        clip_sample=False,
    )
    ref.set_timesteps(20)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g)
    channels = 6 if variance_type == "learned_range" else 3
    timesteps = ref.timesteps.tolist()
    for i, t in enumerate(timesteps[:-1]):  # the last step (t=0) adds no noise in diffusers
        out = torch.randn(2, channels, 4, 4, generator=g)
        if variance_type == "learned_range":
            out[:, 3:] = out[:, 3:].tanh()
        mean_ref, std_ref = _diffusers_mean_std(ref, out, t, x)
        step = p_mean_variance(
            out, x, torch.tensor([t, t]), schedule, kind, variance_type,
            prev_t=torch.tensor([timesteps[i + 1]] * 2),
        )  # fmt: skip
        torch.testing.assert_close(step.mean, mean_ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            step.variance.sqrt().expand_as(std_ref), std_ref, atol=1e-5, rtol=1e-3
        )


def test_unstrided_step_is_the_posterior_at_the_predicted_x0():
    """prev_t = t - 1: the mean is q(x_{t-1} | x_t, x0_pred)'s, fixed_small its variance, and at t=0
    fixed_large takes the posterior variance at t=1 (improved-diffusion's convention)."""
    schedule = hk.NoiseSchedule.cosine(50)
    g = torch.Generator().manual_seed(0)
    x, out = torch.randn(2, 5, 3, generator=g, dtype=torch.float64).unbind(0)
    t = torch.tensor([0, 1, 7, 30, 49])
    small = p_mean_variance(out, x, t, schedule, "v_prediction", "fixed_small")
    mean, _, log_var = schedule.posterior(small.x0_pred, x, t)
    torch.testing.assert_close(small.mean, mean)
    torch.testing.assert_close(small.log_variance.expand_as(x), log_var.expand_as(x))
    large = p_mean_variance(out, x, t, schedule, "v_prediction", "fixed_large")
    expected = torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]])[t]
    torch.testing.assert_close(large.variance[:, 0], expected)
    torch.testing.assert_close(large.mean, small.mean)


def test_learned_range_spans_fixed_small_to_fixed_large_and_clip():
    schedule = hk.NoiseSchedule.linear(100, 1e-3, 0.05)
    x, t = torch.randn(4, 2, dtype=torch.float64), torch.tensor([0, 3, 50, 99])
    pred = torch.randn(4, 2, dtype=torch.float64)
    ends = {}
    for v in (-1.0, 1.0):
        out = torch.cat([pred, torch.full_like(pred, v)], dim=1)
        ends[v] = p_mean_variance(out, x, t, schedule, "epsilon", "learned_range").variance
    torch.testing.assert_close(
        ends[-1.0], p_mean_variance(pred, x, t, schedule).variance.expand_as(pred)
    )
    torch.testing.assert_close(ends[1.0], schedule.betas[t].view(-1, 1).expand(4, 2))
    clipped = p_mean_variance(pred * 50, x, t, schedule, "sample", clip_sample=1.0)
    assert float(clipped.x0_pred.abs().max()) <= 1.0
    with pytest.raises(ValueError, match="variance_type"):
        p_mean_variance(pred, x, t, schedule, "epsilon", "fixed")
