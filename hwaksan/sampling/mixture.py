"""Gaussian-mixture data with its exact denoiser: ground truth for every sampler.

For x0 ~ sum_k w_k N(mu_k, diag(s_k^2)) and x_t = alpha x0 + sigma eps, x_t is a mixture too,
sum_k w_k N(alpha mu_k, alpha^2 s_k^2 + sigma^2), and E[x0 | x_t] = sum_k r_k(x_t)
[mu_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha mu_k)], r_k the responsibilities.
With one component this is the Gaussian case of `hwaksan.diffusion.exact`; here t may be a
float (Euler/Heun with Karras sigmas), read as a log-sigma interpolation of the schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.exact import gaussian_posterior
from hwaksan.diffusion.schedule import NoiseSchedule


@dataclass
class GaussianMixture:
    """K diagonal Gaussians in D dimensions: weights [K], means [K, D], stds [K, D]."""

    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor

    def __post_init__(self) -> None:
        self.weights = torch.as_tensor(self.weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(self.means, dtype=torch.float64)
        self.stds = torch.as_tensor(self.stds, dtype=torch.float64).expand_as(self.means)

    @classmethod
    def gaussian(cls, mean: list[float], std: list[float]) -> GaussianMixture:
        """A single diagonal Gaussian N(mean, diag(std^2))."""
        return cls(torch.ones(1), torch.tensor([mean]), torch.tensor([std]))

    @property
    def mean(self) -> torch.Tensor:
        """E[x0], shape [D]."""
        return self.weights @ self.means

    @property
    def std(self) -> torch.Tensor:
        """Per-dimension standard deviation of x0 (law of total variance), shape [D]."""
        second = self.weights @ (self.stds**2 + self.means**2)
        return (second - self.mean**2).sqrt()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples, shape [n, D], float32."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k] * z).float()

    def _log_joint(
        self, x_t: torch.Tensor, alpha: torch.Tensor | float, sigma: torch.Tensor | float
    ) -> torch.Tensor:
        """log w_k + log N(x_t; alpha mu_k, alpha^2 s_k^2 + sigma^2), shape [N, K]."""
        x = x_t.double()[:, None, :]  # [N, 1, D]
        alpha = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, 1, 1)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1)
        var = alpha**2 * self.stds**2 + sigma**2  # [N, K, D]
        log_n = -0.5 * ((x - alpha * self.means) ** 2 / var + var.log() + math.log(2 * math.pi))
        return self.weights.log() + log_n.sum(-1)

    def log_prob(self, x0: torch.Tensor) -> torch.Tensor:
        """log p(x0) of the data, shape [N]."""
        return self._log_joint(x0, 1.0, 0.0).logsumexp(-1)

    def log_responsibilities(
        self,
        x_t: torch.Tensor,
        alpha: torch.Tensor | float = 1.0,
        sigma: torch.Tensor | float = 0.0,
    ) -> torch.Tensor:
        """log r_k(x_t) = log p(k | x_t), shape [N, K]; alpha, sigma broadcast as [N, 1]."""
        log_joint = self._log_joint(x_t, alpha, sigma)
        return log_joint - log_joint.logsumexp(-1, keepdim=True)

    def posterior_mean(
        self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        """E[x0 | x_t] in float64, shape [N, D]."""
        r = self.log_responsibilities(x_t, alpha, sigma).exp()[:, :, None]  # [N, K, 1]
        x = x_t.double()[:, None, :]
        alpha, sigma = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
        x0_k, _ = gaussian_posterior(x, alpha, sigma, self.means, self.stds**2)  # [N, K, D]
        return (r * x0_k).sum(1)

    def model(
        self, schedule: NoiseSchedule, prediction_type: str = "epsilon"
    ) -> Callable[..., torch.Tensor]:
        """The exact network: model(x_t [N, D], t [N]) -> optimal eps / x0 / v prediction."""

        def exact(x_t: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
            alpha, sigma = schedule.alpha_sigma_at(t, x_t.double())  # VP scales, float64 [N, 1]
            x0 = self.posterior_mean(x_t, alpha, sigma)
            pred = param.convert(x0, x_t.double(), alpha, sigma, "sample", prediction_type)
            return pred.to(x_t.dtype)

        return exact
