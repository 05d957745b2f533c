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


@pytest.mark.parametrize("zero_snr", [False, True])
def test_alpha_sigma_at_a_float_t(zero_snr):
    """At integer t it is `alpha_sigma`; between two it interpolates log-sigma (Karras sigmas)."""
    s = hk.NoiseSchedule.scaled_linear(1000, rescale_zero_terminal_snr=zero_snr)
    like = torch.zeros(4, 3, 2, 2)
    t = torch.tensor([0, 10, 500, 998])
    alpha, sigma = s.alpha_sigma_at(t.float(), like)
    assert alpha.shape == (4, 1, 1, 1)
    ref_alpha, ref_sigma = s.alpha_sigma(t, like)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-6, rtol=0)
    torch.testing.assert_close(sigma, ref_sigma, atol=1e-6, rtol=0)
    half, _ = s.alpha_sigma_at(torch.tensor([10.5]), like[:1])
    ve = s.sigma_table()[10:12].log().mean().exp()  # the log-midpoint of the two sigmas
    torch.testing.assert_close(half.double().reshape(()), (1 + ve**2).rsqrt(), atol=1e-7, rtol=0)
    assert torch.isfinite(s.sigma_table()).all()  # a zero-SNR last step stays finite


def test_strided_posterior_is_the_posterior_one_step_back_and_clean_below_zero():
    s = hk.NoiseSchedule.cosine(1000)
    t = torch.arange(1, 1000)
    step = s.strided_posterior(t, t - 1)
    for ours, table in [
        (step.coef_x0, s.posterior_mean_coef1),
        (step.coef_xt, s.posterior_mean_coef2),
        (step.variance, s.posterior_variance),
        (step.beta, s.betas),
    ]:
        torch.testing.assert_close(ours, table[1:], atol=1e-12, rtol=1e-9)
    assert s.alphas_cumprod_at(torch.tensor([-1, -7])).tolist() == [1.0, 1.0]
    # Averaged over x_t ~ q(x_t | x0), the strided step gives back q(x_s | x0) (Bayes' rule):
    # mean coef_x0 + coef_xt sqrt(a_t) = sqrt(a_s), variance coef_xt^2 (1 - a_t) + var = 1 - a_s.
    a_t, a_s = s.alphas_cumprod[600], s.alphas_cumprod[400]
    q = s.strided_posterior(torch.tensor(600), torch.tensor(400))
    assert torch.isclose(q.coef_x0 + q.coef_xt * a_t.sqrt(), a_s.sqrt())
    assert torch.isclose(q.coef_xt**2 * (1 - a_t) + q.variance, 1 - a_s)
    # Shaped [B, 1, ...] on request; the step to the clean sample has variance 0.
    clean = s.strided_posterior(
        torch.tensor([5, 0]), torch.tensor([-1, -1]), like=torch.zeros(2, 3, 4)
    )
    assert clean.coef_x0.shape == (2, 1, 1) and bool((clean.variance == 0).all())
    assert torch.equal(clean.log_variance.flatten(), s.posterior_log_variance_clipped[[5, 0]])
