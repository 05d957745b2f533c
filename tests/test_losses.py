"""Gaussian helpers against scipy and torch; the losses against closed forms."""

import math

import pytest
import scipy.stats
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

import hwaksan as hk
from hwaksan.diffusion import diffusion_loss, hybrid_loss, min_snr_weight, vlb_terms
from hwaksan.diffusion.exact import GaussianDenoiser
from hwaksan.diffusion.gaussian import (
    approx_standard_normal_cdf,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    normal_kl,
)

GRID = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 8-bit values in [-1, 1]
KINDS = ("epsilon", "sample", "v_prediction")


# --- Gaussian helpers ------------------------------------------------------------------------


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = torch.randn(4, 1000, generator=g, dtype=torch.float64)
    ours = normal_kl(m1, lv1, m2, lv2)
    p = torch.distributions.Normal(m1, (0.5 * lv1).exp())
    q = torch.distributions.Normal(m2, (0.5 * lv2).exp())
    torch.testing.assert_close(ours, torch.distributions.kl_divergence(p, q))
    assert float(normal_kl(m1, lv1, m1, lv1).abs().max()) < 1e-12


def test_approx_cdf_and_log_density_match_scipy():
    x = torch.linspace(-8, 8, 20001, dtype=torch.float64)
    err = (approx_standard_normal_cdf(x) - torch.from_numpy(scipy.stats.norm.cdf(x.numpy()))).abs()
    assert float(err.max()) < 3e-4  # the tanh approximation: measured max error 1.9e-4
    means, log_scales = 0.3 * torch.ones_like(x), math.log(0.7) * torch.ones_like(x)
    ref = scipy.stats.norm.logpdf(x.numpy(), loc=0.3, scale=0.7)
    torch.testing.assert_close(gaussian_log_likelihood(x, means, log_scales), torch.from_numpy(ref))


@pytest.mark.parametrize("mean,scale", [(0.0, 0.3), (-0.97, 0.05), (0.5, 2.0), (1.3, 0.01)])
def test_discretized_bins_sum_to_one_and_match_scipy(mean, scale):
    """The 256 bin probabilities (edge bins to +-inf) sum to one and equal the exact bin masses
    up to the tanh approximation of the CDF."""
    m, ls = torch.full_like(GRID, mean), torch.full_like(GRID, math.log(scale))
    probs = discretized_gaussian_log_likelihood(GRID, m, ls).exp()
    assert abs(float(probs.sum()) - 1) < 1e-9
    edges = torch.cat(
        [torch.tensor([-math.inf]), (GRID[:-1] + GRID[1:]) / 2, torch.tensor([math.inf])]
    )
    exact = torch.from_numpy(scipy.stats.norm(mean, scale).cdf(edges.numpy())).diff()
    assert float((probs - exact).abs().max()) < 5e-4


def test_discretized_narrow_gaussian_on_a_bin_is_certain():
    """A Gaussian much narrower than the bin width 2/255, centred on a bin, puts ~all mass there."""
    ls = torch.full_like(GRID, math.log(1e-4))
    log_p = discretized_gaussian_log_likelihood(GRID, GRID, ls)
    assert float(log_p.min()) > -1e-6
    off_by_one = discretized_gaussian_log_likelihood(GRID[1:-1], GRID[2:], ls[1:-1])
    assert float(off_by_one.max()) < -20


# --- L_simple and its targets ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_target_on_a_hand_computable_case(kind):
    """Zero output, x0 = 1, noise = 1: the error is 1 for eps and x0, (alpha - sigma)^2 for v."""
    schedule = hk.NoiseSchedule.linear(1000)
    t = torch.tensor([0, 400, 999])
    ones = torch.ones(3, 2, 4, 4, dtype=torch.float64)
    loss = diffusion_loss(
        lambda x, t: torch.zeros_like(x),
        ones,
        schedule,
        prediction_type=kind,
        t=t,
        noise=ones,
        reduction="none",
    )
    alpha, sigma = schedule.alphas_cumprod[t].sqrt(), (1 - schedule.alphas_cumprod[t]).sqrt()
    expected = (
        (alpha - sigma) ** 2 if kind == "v_prediction" else torch.ones(3, dtype=torch.float64)
    )
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [10, 300, 900])
def test_exact_model_reaches_the_minimum(kind, t):
    """For x0 ~ N(mu, s^2) the best possible L_simple is the posterior variance of the target:
    Var[x0|x_t] = V for x0, (alpha/sigma)^2 V for eps and V / sigma^2 for v (alpha^2 + sigma^2 = 1);
    moving the prediction by delta adds delta^2. Tolerance: 5% (about 4 Monte Carlo errors)."""
    schedule = hk.NoiseSchedule.linear(1000)
    mu, s = (
        torch.full((256,), 0.2, dtype=torch.float64),
        torch.linspace(0.1, 1.0, 256, dtype=torch.float64),
    )
    g = torch.Generator().manual_seed(t)
    x0 = mu + s * torch.randn(128, 256, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    ts = torch.full((128,), t)
    model = GaussianDenoiser(mu, s, schedule, prediction_type=kind)
    loss = diffusion_loss(model, x0, schedule, prediction_type=kind, t=ts, noise=noise)
    a2 = schedule.alphas_cumprod[t]
    V = s**2 * (1 - a2) / (a2 * s**2 + 1 - a2)
    scale = {"sample": 1.0, "epsilon": a2 / (1 - a2), "v_prediction": 1 / (1 - a2)}[kind]
    expected = float((scale * V).mean())
    assert abs(float(loss) / expected - 1) < 0.05
    worse = diffusion_loss(
        lambda x, t: model(x, t) + 0.1, x0, schedule, prediction_type=kind, t=ts, noise=noise
    )
    # worse - loss = delta^2 + 2 delta mean(error); mean(error) has standard error sqrt(expected/n).
    assert abs(float(worse - loss) - 0.01) < 4 * 0.2 * math.sqrt(expected / x0.numel())


def test_reduction_cond_and_generator():
    schedule = hk.NoiseSchedule.cosine(100)
    x0 = torch.randn(5, 3, 4, 4)

    def model(x_t, t, class_labels):
        return x_t * 0 + class_labels.view(-1, 1, 1, 1)

    cond = {"class_labels": torch.arange(5.0)}
    per_example = diffusion_loss(
        model, x0, schedule, cond=cond, generator=torch.Generator().manual_seed(3), reduction="none"
    )
    mean = diffusion_loss(
        model, x0, schedule, cond=cond, generator=torch.Generator().manual_seed(3)
    )
    assert per_example.shape == (5,)
    torch.testing.assert_close(mean, per_example.mean())
    with pytest.raises(ValueError, match="reduction"):
        diffusion_loss(model, x0, schedule, cond=cond, reduction="sum")


# --- min-SNR-gamma ---------------------------------------------------------------------------


def test_snr_matches_diffusers_compute_snr():
    schedule = hk.NoiseSchedule.scaled_linear(1000)
    ref = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    )
    t = torch.tensor([0, 1, 17, 500, 998, 999])
    torch.testing.assert_close(schedule.snr(t).float(), compute_snr(ref, t), rtol=1e-4, atol=0)


def test_min_snr_weights_give_one_loss_for_all_three_parameterizations():
    """Hang et al. 2023 weight the x0 error by min(SNR, gamma). A model whose x0 estimate is off
    has eps error = sqrt(SNR) x0 error and v error = sqrt(SNR + 1) x0 error, so with the
    per-parameterization weights the three weighted losses must agree, and equal min(SNR, gamma)
    times the x0 error."""
    schedule, gamma = hk.NoiseSchedule.linear(1000), 5.0
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 50, 200, 400, 700, 999])  # SNR from ~1e4 to ~4e-5, both sides of gamma

    def x0_model(x_t, t):
        return 0.5 * x_t + 0.1  # some poor x0 estimate

    losses = {}
    for kind in KINDS:

        def model(x_t, t, kind=kind):
            return schedule.convert(x0_model(x_t, t), x_t, t, "sample", kind)

        losses[kind] = diffusion_loss(
            model,
            x0,
            schedule,
            prediction_type=kind,
            snr_gamma=gamma,
            t=t,
            noise=noise,
            reduction="none",
        )
    x0_err = diffusion_loss(
        x0_model, x0, schedule, prediction_type="sample", t=t, noise=noise, reduction="none"
    )
    expected = schedule.snr(t).clamp(max=gamma) * x0_err
    for kind in KINDS:
        torch.testing.assert_close(losses[kind], expected, rtol=1e-6, atol=1e-9)


def test_min_snr_weight_at_zero_snr_is_finite():
    snr = torch.tensor([0.0, 1e-3, 10.0])
    eps_w = min_snr_weight(snr, 5.0, "epsilon")
    torch.testing.assert_close(eps_w, torch.tensor([1.0, 1.0, 0.5]))
    torch.testing.assert_close(
        min_snr_weight(snr, 5.0, "v_prediction"), torch.tensor([0.0, 1e-3 / 1.001, 5 / 11])
    )


# --- hybrid loss (learned variance) ----------------------------------------------------------


class _TwoHeads(torch.nn.Module):
    """Toy learned-variance model: C mean channels from one weight, C variance ones from another."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mean_w = torch.nn.Parameter(torch.full((channels, 1, 1), 0.3))
        self.var_w = torch.nn.Parameter(torch.full((channels, 1, 1), 0.2))

    def forward(self, x_t, t):
        v = torch.tanh(self.var_w * x_t)  # in [-1, 1], as learned_range expects
        return torch.cat([self.mean_w * x_t, v], dim=1)


def test_hybrid_loss_value_and_gradients():
    """L_hybrid = L_simple + 0.001 * T * L_t(bits/dim); the vlb part moves only the variance."""
    schedule = hk.NoiseSchedule.linear(200, 1e-3, 0.05)
    model = _TwoHeads(3)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, (4, 3, 8, 8), generator=g) / 127.5 - 1).double()
    noise, t = (
        torch.randn(x0.shape, generator=g, dtype=torch.float64),
        torch.tensor([0, 1, 50, 199]),
    )
    model.double()
    hybrid = hybrid_loss(model, x0, schedule, t=t, noise=noise)
    hybrid.backward()
    grad_mean, grad_var = model.mean_w.grad.clone(), model.var_w.grad.clone()
    model.zero_grad()
    simple = diffusion_loss(lambda x, t: model(x, t)[:, :3], x0, schedule, t=t, noise=noise)
    simple.backward()
    torch.testing.assert_close(grad_mean, model.mean_w.grad)  # the vlb term adds nothing here
    assert float(grad_var.abs().min()) > 0
    with torch.no_grad():
        x_t = schedule.add_noise(x0, noise, t)
        vlb = vlb_terms(model(x_t, t), x0, x_t, t, schedule, "epsilon", "learned_range")
    torch.testing.assert_close(hybrid, simple + 1e-3 * 200 * vlb.mean())
