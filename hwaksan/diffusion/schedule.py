"""The forward (noising) process of a discrete-time diffusion model.

q(x_t | x_0) = N(sqrt(alphas_cumprod[t]) x_0, (1 - alphas_cumprod[t]) I)   (Ho et al. 2020, eq. 4)

All tables are computed once in float64 and cast to the input's dtype at use
(the habit of improved-diffusion's `GaussianDiffusion`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from hwaksan.diffusion import parameterization as param
from hwaksan.errors import HwaksanError


@dataclass(frozen=True)
class ScheduleConfig:
    """What it takes to rebuild a schedule; stored beside a saved model as JSON."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"  # "linear" | "scaled_linear" | "cosine"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    rescale_zero_terminal_snr: bool = False


def _cosine_betas(T: int, max_beta: float = 0.999, s: float = 0.008) -> torch.Tensor:
    """alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2) (Nichol & Dhariwal 2021, eq. 17)."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def _rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alphas_cumprod) so the last step has SNR 0 (Lin et al. 2023, Alg. 1)."""
    sqrt_ac = torch.cumprod(1 - betas, 0).sqrt()
    first, last = sqrt_ac[0].clone(), sqrt_ac[-1].clone()
    sqrt_ac = (sqrt_ac - last) * first / (first - last)
    ac = sqrt_ac**2
    alphas = torch.cat([ac[:1], ac[1:] / ac[:-1]])
    return 1 - alphas


class StridedPosterior(NamedTuple):
    """q(x_s | x_t, x0) = N(coef_x0 x0 + coef_xt x_t, variance) for any s < t, in float64.

    Ho et al. 2020, eq. 6-7 with a_t / a_s in place of alpha_t: the step diffusers' DDPMScheduler
    takes with fewer steps, and whose variance DDIM's eta scales (Song et al. 2021, eq. 16).
    """

    alpha_cumprod: torch.Tensor  # a_t
    alpha_cumprod_prev: torch.Tensor  # a_s; 1 for s < 0 ("before the first step")
    beta: torch.Tensor  # beta_{t|s} = 1 - a_t / a_s; betas[t] when s = t - 1
    coef_x0: torch.Tensor  # sqrt(a_s) beta_{t|s} / (1 - a_t)
    coef_xt: torch.Tensor  # sqrt(1 - beta_{t|s}) (1 - a_s) / (1 - a_t)
    variance: torch.Tensor  # (1 - a_s) / (1 - a_t) beta_{t|s}; 0 at the last step
    log_variance: torch.Tensor  # its log, clipped where it is 0 (improved-diffusion)


def vp_alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VP scales (alpha, sigma_vp) of a variance-exploding level x = x0 + sigma eps: dividing
    by sqrt(1 + sigma^2) gives alpha x0 + sigma_vp eps (Karras et al. 2022, Table 1: s(t))."""
    alpha = (1 + sigma**2).rsqrt()
    return alpha, sigma * alpha


def _gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """table[t] as a [B, 1, 1, ...] tensor that broadcasts against `like` (dtype and device too)."""
    t = torch.as_tensor(t, device=table.device).long().reshape(-1)
    out = table[t].to(device=like.device, dtype=like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


class NoiseSchedule:
    """betas, alphas_cumprod and everything derived from them, for T discrete steps.

    Build with `NoiseSchedule.linear(T, beta_start, beta_end)`, `.scaled_linear(...)` or
    `.cosine(T)`; the values equal diffusers' `beta_schedule` of the same name
    ("squaredcos_cap_v2" for cosine).
    """

    def __init__(self, betas: torch.Tensor, config: ScheduleConfig | None = None) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError("betas must be a 1-D tensor with values in (0, 1]")
        self.config = config or ScheduleConfig(
            num_train_timesteps=len(betas), beta_schedule="custom"
        )
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        self.alphas_cumprod_prev = torch.cat(
            [torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]]
        )
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1 - self.alphas_cumprod).sqrt()
        # Posterior q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, posterior_variance)  (eq. 6-7)
        self.posterior_variance = betas * (1 - self.alphas_cumprod_prev) / (1 - self.alphas_cumprod)
        # The variance is 0 at t=0; clip the log to the next value, as improved-diffusion does.
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = (
            betas * self.alphas_cumprod_prev.sqrt() / (1 - self.alphas_cumprod)
        )
        self.posterior_mean_coef2 = (
            (1 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1 - self.alphas_cumprod)
        )

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def linear(
        cls,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        rescale_zero_terminal_snr: bool = False,
    ) -> NoiseSchedule:
        """Betas spaced linearly (Ho et al. 2020)."""
        return cls.from_config(
            ScheduleConfig(
                num_train_timesteps, "linear", beta_start, beta_end, rescale_zero_terminal_snr
            )
        )

    @classmethod
    def scaled_linear(
        cls,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        rescale_zero_terminal_snr: bool = False,
    ) -> NoiseSchedule:
        """sqrt(beta) spaced linearly (Rombach et al. 2022, Stable Diffusion's schedule)."""
        return cls.from_config(
            ScheduleConfig(
                num_train_timesteps,
                "scaled_linear",
                beta_start,
                beta_end,
                rescale_zero_terminal_snr,
            )
        )

    @classmethod
    def cosine(
        cls, num_train_timesteps: int = 1000, rescale_zero_terminal_snr: bool = False
    ) -> NoiseSchedule:
        """The cosine schedule (Nichol & Dhariwal 2021), diffusers' "squaredcos_cap_v2"."""
        return cls.from_config(
            ScheduleConfig(
                num_train_timesteps, "cosine", rescale_zero_terminal_snr=rescale_zero_terminal_snr
            )
        )

    @classmethod
    def from_config(cls, config: ScheduleConfig | dict) -> NoiseSchedule:
        if isinstance(config, dict):
            config = ScheduleConfig(**config)
        T = config.num_train_timesteps
        if T < 2:
            raise ValueError(f"num_train_timesteps must be at least 2, got {T}")
        if config.beta_schedule == "linear":
            betas = torch.linspace(config.beta_start, config.beta_end, T, dtype=torch.float64)
        elif config.beta_schedule == "scaled_linear":
            betas = torch.linspace(config.beta_start**0.5, config.beta_end**0.5, T).double() ** 2
        elif config.beta_schedule == "cosine":
            betas = _cosine_betas(T)
        else:
            raise ValueError(
                f"unknown beta_schedule {config.beta_schedule!r}; "
                "choose linear, scaled_linear or cosine"
            )
        if config.rescale_zero_terminal_snr:
            betas = _rescale_zero_terminal_snr(betas)
        return cls(betas, config)

    def to_config(self) -> dict:
        return asdict(self.config)

    # --- basic quantities ---------------------------------------------------------------------

    @property
    def num_train_timesteps(self) -> int:
        return len(self.betas)

    def __len__(self) -> int:
        return len(self.betas)

    def __repr__(self) -> str:
        c = self.config
        zero_snr = c.rescale_zero_terminal_snr
        return f"NoiseSchedule({c.beta_schedule}, T={len(self)}, zero_snr={zero_snr})"

    def snr(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """SNR = alphas_cumprod / (1 - alphas_cumprod), for all t or the given ones."""
        snr = self.alphas_cumprod / (1 - self.alphas_cumprod)
        return snr if t is None else snr[torch.as_tensor(t).long()]

    @property
    def sigmas(self) -> torch.Tensor:
        """Equivalent variance-exploding noise levels sqrt((1 - a_t) / a_t) (Karras et al. 2022)."""
        return ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()

    def alpha_sigma(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(alphas_cumprod[t]), sqrt(1 - alphas_cumprod[t])), broadcastable against `like`."""
        return _gather(self.sqrt_alphas_cumprod, t, like), _gather(
            self.sqrt_one_minus_alphas_cumprod, t, like
        )

    def sigma_table(self) -> torch.Tensor:
        """sqrt((1 - a_t) / a_t) for every t as diffusers' sigma-space schedulers build it: a
        zero-SNR step (a = 0) gets a = 2^-24, so its sigma stays finite."""
        ac = self.alphas_cumprod
        ac = torch.where(ac > 0, ac, torch.full_like(ac, 2.0**-24))
        return ((1 - ac) / ac).sqrt()

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        """The float64 variance-exploding sigma of each (float) timestep, interpolating log-sigma
        between table entries (the inverse of `sampling.timesteps.sigma_to_t`)."""
        log_sigmas = self.sigma_table().log()
        t = t.to(torch.float64).clamp(0, len(log_sigmas) - 1)
        low = t.floor().long().clamp(max=len(log_sigmas) - 2)
        w = t - low
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[low + 1]).exp()

    def alpha_sigma_at(
        self, t: torch.Tensor, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """VP (alpha_t, sigma_t) at each (possibly fractional) t, [B, 1, ...] like `like`.

        Fractional t (Euler/Heun with Karras sigmas) is read through `sigma_at`; at integer t
        this equals `alpha_sigma` up to rounding (use that one where t is an integer).
        """
        alpha, sigma = vp_alpha_sigma(self.sigma_at(t.detach().reshape(-1).cpu()))  # float64 [B]
        shape = (-1, *([1] * (like.ndim - 1)))
        as_like = dict(dtype=like.dtype, device=like.device)
        return alpha.reshape(shape).to(**as_like), sigma.reshape(shape).to(**as_like)

    def alphas_cumprod_at(self, t: torch.Tensor) -> torch.Tensor:
        """alphas_cumprod[t] in float64, shaped like t, with 1 for t < 0 ("before the first
        step": a sampler's last step lands on the clean sample)."""
        t = torch.as_tensor(t).long().cpu()
        one = torch.ones((), dtype=torch.float64)
        return torch.where(t >= 0, self.alphas_cumprod[t.clamp(min=0)], one)

    def strided_posterior(
        self, t: torch.Tensor, prev_t: torch.Tensor, like: torch.Tensor | None = None
    ) -> StridedPosterior:
        """The float64 tables of q(x_{prev_t} | x_t, x0) for any earlier prev_t (-1: the clean
        sample), shaped like t, or [B, 1, ...] on `like`'s device when it is given."""
        t = torch.as_tensor(t).long().cpu()

        def place(table: torch.Tensor) -> torch.Tensor:
            if like is None:
                return table
            return table.to(like.device).reshape(-1, *([1] * (like.ndim - 1)))

        a_t, a_s = place(self.alphas_cumprod[t]), place(self.alphas_cumprod_at(prev_t))
        beta = 1 - a_t / a_s
        var = (1 - a_s) / (1 - a_t) * beta
        # The last step's variance is 0: take the schedule's clipped value (improved-diffusion).
        clipped = place(self.posterior_log_variance_clipped[t])
        log_var = torch.where(var > 0, var.clamp(min=1e-300).log(), clipped)
        coef_x0 = a_s.sqrt() * beta / (1 - a_t)
        coef_xt = (1 - beta).sqrt() * (1 - a_s) / (1 - a_t)
        return StridedPosterior(a_t, a_s, beta, coef_x0, coef_xt, var, log_var)

    # --- forward process ----------------------------------------------------------------------

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0): sqrt(a_t) x0 + sqrt(1 - a_t) noise (Ho et al. 2020, eq. 4)."""
        alpha, sigma = self.alpha_sigma(t, x0)
        return alpha * x0 + sigma * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The v-prediction target sqrt(a_t) noise - sqrt(1 - a_t) x0 (Salimans & Ho 2022)."""
        alpha, sigma = self.alpha_sigma(t, x0)
        return param.from_x0_eps(x0, noise, alpha, sigma, "v_prediction")

    def target(
        self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction_type: str
    ) -> torch.Tensor:
        """What a network with this prediction type should output for (x0, noise, t)."""
        alpha, sigma = self.alpha_sigma(t, x0)
        return param.from_x0_eps(x0, noise, alpha, sigma, prediction_type)

    # --- conversions between predictions ------------------------------------------------------

    def predict_x0(
        self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction_type: str
    ) -> torch.Tensor:
        alpha, sigma = self.alpha_sigma(t, x_t)
        return param.to_x0(pred, x_t, alpha, sigma, prediction_type)

    def predict_eps(
        self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction_type: str
    ) -> torch.Tensor:
        alpha, sigma = self.alpha_sigma(t, x_t)
        return param.to_eps(pred, x_t, alpha, sigma, prediction_type)

    def convert(
        self, pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, source: str, target: str
    ) -> torch.Tensor:
        """Re-express a prediction of type `source` as one of type `target`."""
        alpha, sigma = self.alpha_sigma(t, x_t)
        return param.convert(pred, x_t, alpha, sigma, source, target)

    # --- reverse-process posterior ------------------------------------------------------------

    def posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x_0) (Ho 2020, eq. 7)."""
        mean = (
            _gather(self.posterior_mean_coef1, t, x_t) * x0
            + _gather(self.posterior_mean_coef2, t, x_t) * x_t
        )
        return (
            mean,
            _gather(self.posterior_variance, t, x_t),
            _gather(self.posterior_log_variance_clipped, t, x_t),
        )


SCHEDULES = ("linear", "cosine")  # the schedules a run can name


def build_schedule(name: str, num_train_timesteps: int = 1000) -> NoiseSchedule:
    """The schedule a training run names ("linear" or "cosine"); HwaksanError otherwise."""
    if name == "linear":
        return NoiseSchedule.linear(num_train_timesteps)
    if name == "cosine":
        return NoiseSchedule.cosine(num_train_timesteps)
    raise HwaksanError(f"unknown schedule {name!r}; use one of {', '.join(SCHEDULES)}")
