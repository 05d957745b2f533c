"""The full variational bound (nll_bits_per_dim) against closed forms for Gaussian data.

For x0 ~ N(mu, diag(s^2)) everything is Gaussian, so the true NLL, the exact reverse step
q(x_{t-1} | x_t) and the bound's expectation are all known in closed form
(`hwaksan.diffusion.exact`). The estimate draws one x_t per t, so it is compared with margins of
about four of its own standard errors, measured over seeds.
"""

import functools
import math

import pytest
import torch

import hwaksan as hk
from hwaksan.diffusion.exact import GaussianDenoiser, MixtureDenoiser
from hwaksan.errors import HwaksanError

D, B = 1024, 8  # dims per example (averaged in bits/dim) and examples
MU = torch.linspace(-0.5, 0.5, D, dtype=torch.float64)
S = torch.linspace(0.05, 0.5, D, dtype=torch.float64)


def _data(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + S * torch.randn(B, D, generator=g, dtype=torch.float64)


def _fixed_large_log_variance(schedule):
    """beta_t, with the posterior variance at t=1 used at t=0 (improved-diffusion)."""
    return torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]]).log()


@functools.cache
def _bound(T: int, variance_type: str, discrete: bool = False):
    """(nll_bits_per_dim's output, the exact model, x0) for the cosine schedule; shared by tests."""
    schedule = hk.NoiseSchedule.cosine(T)
    x0 = _data()
    if discrete:
        x0 = ((x0.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # on the 8-bit grid
    model = GaussianDenoiser(MU, S, schedule, learned_variance=variance_type == "learned_log")
    g = torch.Generator().manual_seed(1)
    out = hk.nll_bits_per_dim(
        model,
        x0,
        schedule,
        variance_type=variance_type,
        discrete=discrete,
        batch_of_t=50,
        generator=g,
    )
    return out, model, x0


@pytest.mark.parametrize("T", [10, 100, 1000])
def test_bound_equals_the_true_nll_with_the_exact_reverse_step(T):
    """With the true reverse variance beta-tilde_t + coef1_t^2 Var[x0|x_t] (the model supplies
    it as a "learned_log" log variance) every p(x_{t-1}|x_t) equals q(x_{t-1}|x_t), the decoder is
    q(x0|x_1), and the bound's only slack is the prior mismatch E log q(x_T)/N(x_T; 0, I): under
    1e-5 bits/dim for the cosine schedule at any T. So the gap does not shrink with T, it is ~0
    at every T; the estimate's gap is Monte Carlo noise (measured |mean gap| <= 0.025 over 3
    seeds, standard error ~0.013), hence the 0.05 margin.
    """
    out, model, x0 = _bound(T, "learned_log")
    true_nll = model.nll_bits_per_dim(x0)
    expected = model.expected_bound()
    assert abs(expected["bound"] - expected["entropy"]) < 1e-5
    assert abs(float((out["bpd"] - true_nll).mean())) < 0.05
    # The breakdown adds up, and the prior term is the closed-form KL.
    torch.testing.assert_close(out["bpd"], out["prior_bpd"] + out["terms_bpd"].sum(1))
    torch.testing.assert_close(out["decoder_bpd"], out["terms_bpd"][:, 0])
    assert abs(float(out["prior_bpd"].mean()) - float(expected["prior"])) < 1e-6


def test_fixed_large_gap_shrinks_with_T_except_for_the_decoder():
    """With fixed variances the bound keeps a gap. Split it with common random numbers (same x_t
    as the exact run): the KL terms' excess over the exact bound falls toward 0 as steps get finer
    (measured 0.313, 0.059, 0.0061 bits/dim at T = 10, 100, 1000; analytic 0.311, 0.058, 0.0060),
    while the decoder's excess stays (0.087, 0.076, 0.18; analytic 0.088, 0.076, 0.18): its
    variance at t=0 is the posterior variance at t=1, about half of the true Var[x0|x_1].
    """
    kl_excess, decoder_excess = [], []
    for T in (10, 100, 1000):
        schedule = hk.NoiseSchedule.cosine(T)
        exact, model, x0 = _bound(T, "learned_log")
        fixed, _, _ = _bound(T, "fixed_large")
        kl = (fixed["terms_bpd"][:, 1:].sum(1) - exact["terms_bpd"][:, 1:].sum(1)).mean()
        dec = (fixed["decoder_bpd"] - exact["decoder_bpd"]).mean()
        analytic = model.expected_bound(_fixed_large_log_variance(schedule))
        analytic_exact = model.expected_bound()
        analytic_kl = analytic["terms"][1:].sum() - analytic_exact["terms"][1:].sum()
        assert abs(float(kl) / float(analytic_kl) - 1) < 0.1
        assert abs(float(dec) - float(analytic["terms"][0] - analytic_exact["terms"][0])) < 0.03
        # The whole estimate agrees with the analytic expectation of the bound too.
        total_gap = (fixed["bpd"] - model.nll_bits_per_dim(x0)).mean()
        assert abs(float(total_gap) - float(analytic["bound"] - analytic["entropy"])) < 0.06
        kl_excess.append(float(kl))
        decoder_excess.append(float(dec))
    assert kl_excess[0] > kl_excess[1] > kl_excess[2] > 0 and kl_excess[2] < 0.01
    assert min(decoder_excess) > 0.05


def test_best_gaussian_step_closes_the_gap_as_steps_get_finer():
    """For a two-bump mixture (0.5 N(-0.5, 0.1^2) + 0.5 N(0.5, 0.1^2) per dim) the reverse step is
    not Gaussian; the moment-matched Gaussian step (exact E and Var of x0 | x_t) leaves a gap that
    closes as T grows: measured 0.180, 0.031, -0.003 (+- 0.006) bits/dim at T = 10, 30, 100
    (benchmarks/nll_gaussian.py, 32 examples); this test's 8 examples have s.e. ~0.012."""
    g = torch.Generator().manual_seed(0)
    x0 = 0.5 * (torch.randint(0, 2, (B, D), generator=g) * 2 - 1) + 0.1 * torch.randn(
        B, D, generator=g
    )
    x0 = x0.double()
    gaps = []
    for T in (10, 30, 100):
        schedule = hk.NoiseSchedule.cosine(T)
        model = MixtureDenoiser(torch.tensor([-0.5, 0.5]), 0.1, schedule, learned_variance=True)
        g = torch.Generator().manual_seed(1)
        out = hk.nll_bits_per_dim(
            model,
            x0,
            schedule,
            variance_type="learned_log",
            discrete=False,
            batch_of_t=50,
            generator=g,
        )
        gaps.append(float((out["bpd"] - model.nll_bits_per_dim(x0)).mean()))
    assert gaps[0] > 0.12 and gaps[0] > gaps[1] + 0.08
    assert abs(gaps[2]) < 0.05


@pytest.mark.parametrize("T", [10, 100, 1000])
def test_fixed_small_is_a_loose_bound(T):
    """fixed_small (beta-tilde) under-estimates the reverse variance at low noise, where
    coef1^2 Var[x0|x_t] ~ beta-tilde: measured gaps 0.41, 0.95, 0.79 bits/dim at T = 10, 100,
    1000 (analytic 0.44, 0.97, 0.75): it does not close as T grows."""
    out, model, x0 = _bound(T, "fixed_small")
    analytic = model.expected_bound(model.schedule.posterior_log_variance_clipped)
    gap = float((out["bpd"] - model.nll_bits_per_dim(x0)).mean())
    assert abs(gap - float(analytic["bound"] - analytic["entropy"])) < 0.08
    assert gap > 0.3


def test_discrete_bound_is_the_continuous_nll_plus_the_bin_width():
    """For 8-bit data whose density is smooth at the bin scale, -log2 P(bin) = -log2 p(x) +
    log2(255 / 2). With the exact model the discrete bound lands there (measured -0.0001 and
    +0.009 bits/dim at T = 100 and 1000); every term is a KL or a -log probability, so none is
    negative."""
    out, model, x0 = _bound(100, "learned_log", discrete=True)
    reference = model.nll_bits_per_dim(x0) + math.log2(127.5)
    assert abs(float((out["bpd"] - reference).mean())) < 0.05
    assert bool((out["terms_bpd"] >= -1e-9).all())


def test_cond_is_tiled_with_each_batch_of_t():
    """Each model call sees matching rows of x_t, t and cond, whatever batch_of_t is."""
    schedule = hk.NoiseSchedule.linear(12, 1e-3, 0.2)
    x0 = torch.randint(0, 256, (3, 2, 4, 4)) / 127.5 - 1
    labels = torch.tensor([0, 1, 2])
    seen = []

    def model(x_t, t, class_labels):
        assert len(x_t) == len(t) == len(class_labels)
        seen.append((t.clone(), class_labels.clone()))
        return torch.zeros_like(x_t) + class_labels.view(-1, 1, 1, 1).float()

    out = hk.nll_bits_per_dim(model, x0, schedule, cond={"class_labels": labels}, batch_of_t=5)
    assert out["terms_bpd"].shape == (3, 12)
    t_all = torch.cat([t for t, _ in seen])
    labels_all = torch.cat([c for _, c in seen])
    assert sorted(t_all.tolist()) == sorted(list(range(12)) * 3)
    assert bool((t_all.view(12, 3) == t_all.view(12, 3)[:, :1]).all())  # one t per copy of x0
    assert labels_all.tolist() == [0, 1, 2] * 12


def test_discrete_needs_8bit_data():
    schedule = hk.NoiseSchedule.linear(10, 1e-3, 0.2)
    with pytest.raises(HwaksanError, match="8-bit"):
        hk.nll_bits_per_dim(lambda x, t: x, torch.full((1, 4), 0.3), schedule)
