"""The noise schedule against diffusers' tables and against its own algebra."""

import pytest
import torch
from diffusers import DDPMScheduler

import hwaksan as hk

SCHEDULES = [
    (
        "linear",
        lambda T: hk.NoiseSchedule.linear(T, 1e-4, 0.02),
        dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
    ),
    (
        "scaled_linear",
        lambda T: hk.NoiseSchedule.scaled_linear(T, 0.00085, 0.012),
        dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    ),
    ("cosine", lambda T: hk.NoiseSchedule.cosine(T), dict(beta_schedule="squaredcos_cap_v2")),
]


@pytest.mark.parametrize("zero_snr", [False, True])
@pytest.mark.parametrize("name,ours,theirs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
@pytest.mark.parametrize("T", [1000, 37])
def test_alphas_cumprod_match_diffusers(name, ours, theirs, T, zero_snr):
    s = ours(T)
    if zero_snr:
        s = hk.NoiseSchedule.from_config({**s.to_config(), "rescale_zero_terminal_snr": True})
    ref = DDPMScheduler(num_train_timesteps=T, rescale_betas_zero_snr=zero_snr, **theirs)
    assert s.alphas_cumprod.dtype == torch.float64
    assert len(s.betas) == T
    torch.testing.assert_close(s.alphas_cumprod, ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    if zero_snr:
        assert s.alphas_cumprod[-1] == 0


def test_add_noise_and_conversions_roundtrip():
    s = hk.NoiseSchedule.cosine(1000)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 3, 4, 4, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    x_t = s.add_noise(x0, eps, t)
    ac = s.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, ac.sqrt() * x0 + (1 - ac).sqrt() * eps)
    for kind in ("epsilon", "sample", "v_prediction"):
        pred = s.target(x0, eps, t, kind)
        torch.testing.assert_close(s.predict_x0(pred, x_t, t, kind), x0, atol=2e-3, rtol=1e-3)
        torch.testing.assert_close(s.predict_eps(pred, x_t, t, kind), eps, atol=2e-3, rtol=1e-3)
        for other in ("epsilon", "sample", "v_prediction"):
            torch.testing.assert_close(
                s.convert(pred, x_t, t, kind, other),
                s.target(x0, eps, t, other),
                atol=2e-3,
                rtol=1e-3,
            )


def test_posterior_matches_bayes_rule():
    """The posterior mean/variance equal Gaussian conditioning of x_{t-1} on (x_t, x0)."""
    s = hk.NoiseSchedule.linear(50, 1e-3, 0.2)
    for t in (1, 10, 49):
        a_prev, beta = s.alphas_cumprod[t - 1], s.betas[t]
        # x_{t-1} = sqrt(a_prev) x0 + sqrt(1-a_prev) e1; x_t = sqrt(1-beta) x_{t-1} + sqrt(beta) e2
        prec = 1 / (1 - a_prev) + (1 - beta) / beta
        var = 1 / prec
        x0, xt = (
            torch.tensor([[0.3]], dtype=torch.float64),
            torch.tensor([[-1.1]], dtype=torch.float64),
        )
        mean = var * (a_prev.sqrt() * x0 / (1 - a_prev) + (1 - beta).sqrt() * xt / beta)
        m, v, logv = s.posterior(x0, xt, torch.tensor([t]))
        torch.testing.assert_close(m, mean)
        torch.testing.assert_close(v.flatten()[0], var)
        torch.testing.assert_close(logv.flatten()[0], var.log())


def test_snr_and_sigmas():
    s = hk.NoiseSchedule.linear(1000)
    torch.testing.assert_close(s.snr(), s.alphas_cumprod / (1 - s.alphas_cumprod))
    torch.testing.assert_close(s.sigmas**2, 1 / s.snr())
    assert bool((s.snr()[1:] < s.snr()[:-1]).all())


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown beta_schedule"):
        hk.NoiseSchedule.from_config({"beta_schedule": "quadratic"})
    with pytest.raises(ValueError, match="prediction_type"):
        s = hk.NoiseSchedule.linear(10)
        s.predict_x0(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([0]), "score")
