"""Every sampler on data whose exact denoiser is known in closed form: Gaussians and mixtures.

With the exact model the only errors left are the sampler's own (discretization) and Monte
Carlo noise (about 1/sqrt(2n) = 0.7% on a std for n = 10,000), so the moments must match.
"""

import pytest
import torch

import hwaksan as hk
from hwaksan.sampling.mixture import GaussianMixture

SCHEDULE = hk.NoiseSchedule.linear(1000)
GAUSSIAN = GaussianMixture.gaussian([1.0, -0.5], [0.5, 1.5])
MIXTURE = GaussianMixture(
    weights=torch.tensor([0.2, 0.3, 0.5]),
    means=torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]]),
    stds=torch.tensor([[0.3, 0.5], [0.5, 0.3], [0.4, 0.4]]),
)
N = 10_000


# (sampler, steps, options): steps chosen so each sampler's bias is below ~2% (measured).
CASES = [
    ("ddpm", 500, dict(variance_type="fixed_small")),
    ("ddpm", 250, dict(variance_type="fixed_large")),
    ("ddim", 200, dict(eta=0.0)),
    ("ddim", 250, dict(eta=1.0, timestep_spacing="trailing")),
    ("euler", 200, dict()),
    ("euler", 200, dict(use_karras_sigmas=True)),
    ("heun", 50, dict(timestep_spacing="linspace", prediction_type="sample")),
    ("heun", 50, dict(use_karras_sigmas=True)),
    ("dpmpp_2m", 50, dict(timestep_spacing="trailing", prediction_type="v_prediction")),
    ("dpmpp_2m", 50, dict(use_karras_sigmas=True)),
]


def draw(data, sampler, steps, n=N, **options):
    model = data.model(SCHEDULE, options.get("prediction_type", "epsilon"))
    g = torch.Generator().manual_seed(0)
    return hk.sample(
        model, (n, 2), schedule=SCHEDULE, sampler=sampler, steps=steps, generator=g, **options
    )


@pytest.mark.parametrize(
    "sampler, steps, options", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
)
def test_gaussian_moments(sampler, steps, options):
    x = draw(GAUSSIAN, sampler, steps, **options).double()
    mean_err = ((x.mean(0) - GAUSSIAN.mean) / GAUSSIAN.std).abs().max()
    std_err = (x.std(0) / GAUSSIAN.std - 1).abs().max()
    assert mean_err < 0.05  # measured <= 0.025 (the x_T draw itself is off by ~0.01-0.02)
    assert std_err < 0.035  # measured <= 0.022


def test_too_few_steps_are_visibly_wrong():
    """The moment test can fail: first-order DDIM with 10 steps shrinks the std by > 10%."""
    x = draw(GAUSSIAN, "ddim", 10).double()
    assert (x.std(0) / GAUSSIAN.std - 1).abs().max() > 0.1


@pytest.mark.parametrize("sampler, steps", [("dpmpp_2m", 25), ("heun", 25), ("ddim", 100)])
def test_mixture_weights_and_moments(sampler, steps):
    x = draw(MIXTURE, sampler, steps).double()
    labels = MIXTURE.log_responsibilities(x).argmax(1)
    weights = torch.bincount(labels, minlength=3).double() / len(x)
    assert (weights - MIXTURE.weights).abs().max() < 0.02  # measured <= 0.008
    assert ((x.mean(0) - MIXTURE.mean) / MIXTURE.std).abs().max() < 0.05
    assert (x.std(0) / MIXTURE.std - 1).abs().max() < 0.03


def test_ddim_with_eta_one_is_ddpm():
    """DDIM at eta = 1 is DDPM with the posterior variance (Song et al. 2021, §4.1): same x."""
    model = GAUSSIAN.model(SCHEDULE)
    runs = [
        hk.sample(
            model,
            (64, 2),
            schedule=SCHEDULE,
            steps=20,
            generator=torch.Generator().manual_seed(5),
            **kw,
        )
        for kw in (dict(sampler="ddim", eta=1.0), dict(sampler="ddpm"))
    ]
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)


def test_mixture_exact_model_matches_bayes_rule():
    """E[x0 | x_t] from the mixture formula equals a brute-force Monte Carlo posterior mean."""
    g = torch.Generator().manual_seed(1)
    x0 = MIXTURE.sample(400_000, g).double()
    t = torch.tensor([300])
    alpha, sigma = SCHEDULE.alpha_sigma(t, x0)
    x_t = alpha * x0 + sigma * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    query = torch.tensor([[0.5, -0.5]], dtype=torch.float64)
    # Weight each sample by how close its x_t falls to the query (a narrow Gaussian kernel).
    w = torch.exp(-((x_t - query) ** 2).sum(1) / (2 * 0.02**2))
    brute = (w[:, None] * x0).sum(0) / w.sum()
    exact = MIXTURE.posterior_mean(query, alpha[:1], sigma[:1])[0]
    assert (brute - exact).abs().max() < 0.05
