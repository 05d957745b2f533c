"""RePaint (Lugmayr et al. 2022): inpainting with any unconditional or text model, as a sampler
callback. After every step the known region is replaced by the known image noised to the level
the step landed at (eq. 8); every `jump_length` steps the sample is noised back up that many
levels (q(x_t | x_s), eq. 9) and those steps are run again, `jump_n_sample` times in all
(Algorithm 1 with the jumps of sec. 4.2), so the generated part can harmonize with the known one.
The re-run steps are DDPM-like (DDIM with eta = 1) at the levels the sampler visited, whatever
the sampler; it works in the VP terms `SamplerStep` gives (`sampling.hooks`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling.denoiser import noise_like
from hwaksan.sampling.hooks import Callback, SamplerStep


@dataclass
class RePaint:
    """A `hk.sample(callback=...)` that inpaints: `known` x0 [B, C, h, w] (the image, or its
    latents) kept where `keep` [B, 1, h, w] is 1; `model(x_t, t)` re-runs the jumps' steps."""

    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    known: torch.Tensor
    keep: torch.Tensor
    schedule: NoiseSchedule
    prediction_type: str = "epsilon"
    jump_length: int = 1
    jump_n_sample: int = 1
    generator: torch.Generator | None = None
    then: Callback | None = None  # another callback (the user's), shown the repainted x
    steps: int | None = None  # the sampler's steps: its last output is the clean sample
    _since_jump: list = field(default_factory=list)  # (timestep, alpha, sigma) since the last jump

    def __call__(self, step: SamplerStep) -> torch.Tensor:
        x = self.replace_known(step.x, step.alpha, step.sigma)
        self._since_jump.append((step.timestep, step.alpha, step.sigma))
        if len(self._since_jump) == self.jump_length:
            for _ in range(self.jump_n_sample - 1):
                x = self.resample(x)
            self._since_jump = []
        if step.index == (self.steps or 0) - 1:  # the output (DDIM may end at t = 0, not clean)
            x = torch.lerp(x, self.known, self.keep)
        return x if self.then is None else _then(self.then, step, x)

    def replace_known(self, x: torch.Tensor, alpha, sigma) -> torch.Tensor:
        """x with its known region set to the known x0 noised to (alpha, sigma): eq. 8's
        m * x_known + (1 - m) * x_unknown."""
        noisy = alpha.to(x.dtype) * self.known + sigma.to(x.dtype) * noise_like(x, self.generator)
        return torch.lerp(x, noisy, self.keep)  # (B, C, h, w)

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        """One jump: x noised from the last landing level back to where the window began
        (q(x_t | x_s), eq. 9), then the window's steps run again, each followed by the
        replacement of the known region."""
        t_first, _, _ = self._since_jump[0]
        alpha, sigma = self._level(t_first)
        _, alpha_low, sigma_low = self._since_jump[-1]
        x = self._noise_up(x, alpha_low, sigma_low, alpha, sigma)
        for t, alpha_land, sigma_land in self._since_jump:
            alpha, sigma = self._level(t)
            pred = self.model(x, t.to(x.device).reshape(()).expand(x.shape[0]))
            a, s = alpha.to(x.dtype), sigma.to(x.dtype)
            x0 = param.to_x0(pred, x, a, s, self.prediction_type)
            eps = param.to_eps(pred, x, a, s, self.prediction_type)
            x = _ddpm_like_step(x0, eps, alpha, sigma, alpha_land, sigma_land, self.generator)
            x = self.replace_known(x, alpha_land, sigma_land)
        return x

    def _level(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VP (alpha, sigma) the model reads at timestep t, float64 scalars."""
        a = self.schedule.alpha_sigma_at(t.reshape(1), torch.zeros(1, dtype=torch.float64))
        return a[0].reshape(()), a[1].reshape(())

    def _noise_up(self, x, alpha_low, sigma_low, alpha, sigma) -> torch.Tensor:
        """A draw of q(x_t | x_s) from the cleaner level s to t: ratio x_s + the missing noise."""
        ratio = alpha / alpha_low
        std = (sigma**2 - ratio**2 * sigma_low**2).clamp(min=0).sqrt()
        return ratio.to(x.dtype) * x + std.to(x.dtype) * noise_like(x, self.generator)


def _then(callback: Callback, step: SamplerStep, x: torch.Tensor) -> torch.Tensor:
    """x as the next callback leaves it (it sees the step with x repainted)."""
    out = callback(replace(step, x=x))
    return x if out is None else out


def _ddpm_like_step(x0, eps, alpha, sigma, alpha_next, sigma_next, generator) -> torch.Tensor:
    """DDIM with eta = 1 from (alpha, sigma) to the cleaner (alpha_next, sigma_next) (Song et al.
    2021, eq. 12 and 16): the ancestral step, for any pair of levels."""
    var = (sigma_next / sigma) ** 2 * (1 - (alpha / alpha_next) ** 2)
    std = var.clamp(min=0).sqrt()
    direction = (sigma_next**2 - var).clamp(min=0).sqrt()
    x = alpha_next.to(x0.dtype) * x0 + direction.to(x0.dtype) * eps
    return x + std.to(x0.dtype) * noise_like(x0, generator)
