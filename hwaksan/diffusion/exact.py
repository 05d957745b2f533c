"""Exact denoisers for data with a closed-form posterior: models to test samplers, losses, bounds.

For x0 ~ N(mu, diag(s^2)) and x_t = alpha x0 + sigma eps, Gaussian conditioning gives
E[x0 | x_t] = mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu) and
Var[x0 | x_t] = s^2 sigma^2 / (alpha^2 s^2 + sigma^2); the reverse step q(x_{t-1} | x_t) is then
Gaussian too, with variance beta-tilde_t + coef1_t^2 Var[x0 | x_t] (Ho et al. 2020, eq. 7).
For a Gaussian mixture the posterior is a mixture and the reverse step is not Gaussian; the same
two moments give the best Gaussian step (Bao et al. 2022's analytic variance, here exact).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule, _gather


def gaussian_posterior(
    x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, mu: torch.Tensor, s2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E[x0 | x_t], Var[x0 | x_t]) for x0 ~ N(mu, s2) and x_t = alpha x0 + sigma eps, by
    Gaussian conditioning; the building block of every exact denoiser here (one per component)."""
    denom = alpha**2 * s2 + sigma**2
    return mu + alpha * s2 / denom * (x_t - alpha * mu), s2 * sigma**2 / denom


class _ExactDenoiser(ABC):
    """model(x_t, t) -> the optimal eps / x0 / v prediction, from E[x0 | x_t] (`posterior_x0`).

    With `learned_variance=True` it also outputs, as C more channels on dim 1, the log of the
    reverse variance beta-tilde_t + coef1_t^2 Var[x0 | x_t], for variance_type="learned_log".
    """

    def __init__(
        self, schedule: NoiseSchedule, prediction_type: str, learned_variance: bool
    ) -> None:
        self.schedule = schedule
        self.prediction_type, self.learned_variance = prediction_type, learned_variance

    @abstractmethod
    def posterior_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[x0 | x_t], Var[x0 | x_t]), each shaped like x_t."""

    def reverse_variance(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Var[x_{t-1} | x_t] = beta-tilde_t + coef1_t^2 Var[x0 | x_t] (at t = 0: Var[x0 | x_t])."""
        _, x0_var = self.posterior_x0(x_t, t)
        coef1 = _gather(self.schedule.posterior_mean_coef1, t, x_t)
        return _gather(self.schedule.posterior_variance, t, x_t) + coef1**2 * x0_var

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        x0, _ = self.posterior_x0(x_t, t)
        alpha, sigma = self.schedule.alpha_sigma(t, x_t)
        pred = param.convert(x0, x_t, alpha, sigma, "sample", self.prediction_type)
        if not self.learned_variance:
            return pred
        return torch.cat([pred, self.reverse_variance(x_t, t).log()], dim=1)


class GaussianDenoiser(_ExactDenoiser):
    """The exact denoiser for x0 ~ N(mu, diag(s^2)); with learned_variance its reverse step is
    exactly q(x_{t-1} | x_t), so the variational bound is tight."""

    def __init__(
        self,
        mu: torch.Tensor,
        s: torch.Tensor,
        schedule: NoiseSchedule,
        prediction_type: str = "epsilon",
        learned_variance: bool = False,
    ) -> None:
        super().__init__(schedule, prediction_type, learned_variance)
        self.mu, self.s = mu, s

    def posterior_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[x0 | x_t], Var[x0 | x_t]) by Gaussian conditioning."""
        alpha, sigma = self.schedule.alpha_sigma(t, x_t)
        mean, var = gaussian_posterior(x_t, alpha, sigma, self.mu.to(x_t), self.s.to(x_t) ** 2)
        return mean, var.expand_as(x_t)

    def expected_bound(self, log_variance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """E over x0 ~ data and x_t of the bound's terms with the exact mean, in bits/dim.

        log_variance: the reverse log variances per t ([T], fixed variances); None = the true
        ones. Returns {"prior", "terms" [T] (column 0 the decoder), "bound", "entropy"}.
        """
        S, mu, s2 = self.schedule, self.mu.double(), self.s.double() ** 2
        ac = S.alphas_cumprod[:, None]  # [T, 1]
        x0_var = s2 * (1 - ac) / (ac * s2 + 1 - ac)  # Var[x0 | x_t], [T, D]
        coef1, post_var = S.posterior_mean_coef1[:, None], S.posterior_variance[:, None]
        true_var = post_var + coef1**2 * x0_var
        var = true_var if log_variance is None else log_variance.double()[:, None].exp()
        # E KL(N(m_q, post_var) || N(m_p, var)), using E (m_q - m_p)^2 = coef1^2 Var[x0 | x_t].
        kl = 0.5 * (var.log() - post_var.log() + (post_var + coef1**2 * x0_var) / var - 1)
        decoder = 0.5 * (2 * math.pi * var[0]).log() + x0_var[0] / (2 * var[0])
        terms = torch.cat([decoder[None], kl[1:]]).mean(dim=1) / math.log(2.0)
        a_T2, var_T = ac[-1, 0], 1 - ac[-1, 0]
        prior = 0.5 * (var_T - var_T.log() + a_T2 * (mu**2 + s2) - 1).mean() / math.log(2.0)
        entropy = 0.5 * (2 * math.pi * math.e * s2).log().mean() / math.log(2.0)
        return {"prior": prior, "terms": terms, "bound": prior + terms.sum(), "entropy": entropy}

    def nll_bits_per_dim(self, x0: torch.Tensor) -> torch.Tensor:
        """The true -log N(x0; mu, s^2) per example, in bits/dim: [B]."""
        mu, s = self.mu.to(x0), self.s.to(x0)
        nats = 0.5 * math.log(2 * math.pi) + s.log() + 0.5 * ((x0 - mu) / s) ** 2
        return nats.mean(dim=tuple(range(1, x0.ndim))) / math.log(2.0)


class MixtureDenoiser(_ExactDenoiser):
    """The exact denoiser for x0 whose every dimension is an equal-weight mixture of N(m_k, r^2);
    with learned_variance its reverse step is the best (moment-matched) Gaussian one."""

    def __init__(
        self,
        means: torch.Tensor,
        r: float,
        schedule: NoiseSchedule,
        prediction_type: str = "epsilon",
        learned_variance: bool = False,
    ) -> None:
        super().__init__(schedule, prediction_type, learned_variance)
        self.means, self.r2 = torch.as_tensor(means, dtype=torch.float64), r * r

    def posterior_x0(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[x0 | x_t], Var[x0 | x_t]) of the posterior mixture (weights by Bayes' rule)."""
        alpha, sigma = self.schedule.alpha_sigma(t, x_t)
        alpha, sigma, x, m = alpha[..., None], sigma[..., None], x_t[..., None], self.means.to(x_t)
        var_t = alpha**2 * self.r2 + sigma**2  # the variance of x_t under each component
        weights = (-0.5 * (x - alpha * m) ** 2 / var_t).softmax(dim=-1)  # [..., K]
        comp_mean, within = gaussian_posterior(x, alpha, sigma, m, self.r2)
        mean = (weights * comp_mean).sum(-1)
        return mean, within[..., 0] + (weights * comp_mean**2).sum(-1) - mean**2

    def nll_bits_per_dim(self, x0: torch.Tensor) -> torch.Tensor:
        """The true -log p(x0) per example, in bits/dim: [B]."""
        comps = torch.distributions.Normal(self.means.to(x0), math.sqrt(self.r2))
        log_p = comps.log_prob(x0[..., None]).logsumexp(-1) - math.log(len(self.means))
        return -log_p.mean(dim=tuple(range(1, x0.ndim))) / math.log(2.0)
