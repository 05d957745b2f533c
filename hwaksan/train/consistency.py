"""Consistency distillation (Song et al. 2023, Alg. 2) and consistency training with the improved
recipe (Song & Dhariwal 2023), as recipes on the one training loop.

Both train f(x, sigma) (`nets.consistency.ConsistencyUNet`) to agree with itself at two adjacent
levels sigma_n < sigma_{n+1} of a Karras grid:
- distillation: x_{n+1} = x0 + sigma_{n+1} z; the teacher's Heun step of the probability-flow
  ODE lands at x_n; loss d(f(x_{n+1}), f_target(x_n)), the target an EMA of f updated in
  `after_step` (mu = 0.95), N = 18 levels;
- training: no teacher, x_n = x0 + sigma_n z with the same z; no target EMA (the target is f
  itself, gradient stopped), pseudo-Huber loss weighted 1 / (sigma_{n+1} - sigma_n), n drawn
  from a lognormal over sigma, and N doubling from 11 to 1281 levels in equal stages.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import torch
from torch import nn

from hwaksan.diffusion.consistency import (
    ct_discretization,
    ct_weight,
    lognormal_level_probs,
    pseudo_huber,
)
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling.consistency import sigma_range, snap_to_schedule
from hwaksan.sampling.guidance import classifier_free_guidance
from hwaksan.sampling.timesteps import karras_sigmas
from hwaksan.train.conditioners import Conditioner
from hwaksan.train.few_step import FewStepRecipe
from hwaksan.train.teacher import frozen, heun_step, x0_at

LOSSES = ("l2", "pseudo_huber", "lpips")
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def karras_levels(schedule: NoiseSchedule, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps, sigmas) [n] of an ascending Karras grid (rho = 7) from sigma_min to sigma_max,
    snapped to the schedule's timesteps (Song et al. 2023, sec. 5)."""
    sigma_min, sigma_max = sigma_range(schedule)
    return snap_to_schedule(schedule, karras_sigmas(sigma_min, sigma_max, n).flip(0))


def mean_squared(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error [B]."""
    return (pred - target).float().square().flatten(1).mean(1)


def consistency_distance(loss: str) -> Distance:
    """d(pred, target) -> [B]: mean squared error ("l2"), the pseudo-Huber metric, or LPIPS on the
    shapes-world perceptual net ("lpips"; Song et al. 2023, sec. 6: LPIPS made CD's best FID; the
    net takes gray images as RGB and resizes to its 64 px, as the paper resized to VGG's 224)."""
    if loss == "l2":
        return mean_squared
    if loss == "pseudo_huber":
        return pseudo_huber
    from hwaksan.nets.perceptual import shapes_perceptual

    perceptual = shapes_perceptual()

    def lpips(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return perceptual.to(pred.device)(pred.float(), target.float())

    return lpips


class ConsistencyRecipe(FewStepRecipe):
    """What both methods share: f at a batch of levels, the progress grid in one step."""

    sampler = "consistency"
    prediction_type = "sample"

    def f(self, model: nn.Module, x: torch.Tensor, levels, cond: dict) -> torch.Tensor:
        """f(x, sigma) at x = x0 + sigma eps [B, ...], levels = (t [B], sigma [B])."""
        t, sigma = levels
        return x0_at(model, x, sigma, t, "sample", cond)


class ConsistencyDistillation(ConsistencyRecipe):
    """Song et al. 2023, Alg. 2, with the teacher's classifier-free guidance folded in
    (`guidance_scale` != 1: the target follows the guided ODE)."""

    def __init__(
        self, model: nn.Module, teacher: nn.Module, schedule: NoiseSchedule,
        image_shape: tuple[int, int, int], conditioner: Conditioner, *,
        teacher_prediction_type: str = "v_prediction", guidance_scale: float = 1.0,
        num_levels: int = 18, target_decay: float = 0.95, loss: str = "l2",
        sample_steps: int = 1, num_samples: int = 16,
    ) -> None:  # fmt: skip
        super().__init__(model, schedule, image_shape, conditioner, sample_steps=sample_steps,
                         num_samples=num_samples)  # fmt: skip
        self.teacher = frozen(teacher)
        self.teacher_prediction_type, self.guidance_scale = teacher_prediction_type, guidance_scale
        self.target = copy.deepcopy(model).requires_grad_(False)
        self.num_levels, self.target_decay, self.loss_kind = num_levels, target_decay, loss
        self.distance = consistency_distance(loss)
        self.t, self.sigmas = karras_levels(schedule, num_levels)  # ascending

    def teacher_x0(self, x: torch.Tensor, sigma, t, cond: dict) -> torch.Tensor:
        """The teacher's (guided) x0 estimate."""
        model = self.teacher
        if self.guidance_scale != 1.0 and "class_labels" in cond:
            null = torch.full_like(cond["class_labels"], self.conditioner.num_classes)
            model = classifier_free_guidance(model, self.guidance_scale, {"class_labels": null})
        return x0_at(model, x, sigma, t, self.teacher_prediction_type, cond)

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        x0, cond = self.batch_inputs(batch)
        n = torch.randint(0, self.num_levels - 1, (x0.shape[0],))  # (B,) the pair (n, n + 1)
        here, above = (self.t[n], self.sigmas[n]), (self.t[n + 1], self.sigmas[n + 1])
        x_above = x0 + above[1].reshape(-1, 1, 1, 1).to(x0) * torch.randn_like(x0)
        with torch.no_grad():
            denoise = functools.partial(self._denoise, cond=cond)
            x_here = heun_step(denoise, x_above, above, here)  # the teacher's ODE step
            target = self.f(self.target, x_here, here, cond)
        pred = self.f(model, x_above, above, cond)
        loss = self.distance(pred, target).mean()
        return loss, {}

    def _denoise(self, x, sigma, t, cond):
        return self.teacher_x0(x, sigma, t, cond)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        """The target network's EMA: theta- <- mu theta- + (1 - mu) theta (Alg. 2)."""
        for target, online in zip(self.target.parameters(), model.parameters()):
            target.lerp_(online.detach().to(target.device), 1 - self.target_decay)

    def extra_state(self):
        return {"target": self.target.state_dict()}, {}

    def load_extra_state(self, tensors, state) -> None:
        if "target" in tensors:
            self.target.load_state_dict(tensors["target"])

    def describe(self) -> dict:
        return dict(kind="consistency_distillation", num_levels=self.num_levels,
                    target_decay=self.target_decay, loss=self.loss_kind,
                    guidance_scale=self.guidance_scale)  # fmt: skip


class ConsistencyTraining(ConsistencyRecipe):
    """Song & Dhariwal 2023: consistency training from data alone (module docstring); the
    curriculum runs over `total_steps`, and each step logs its number of levels."""

    def __init__(
        self, model: nn.Module, schedule: NoiseSchedule, image_shape: tuple[int, int, int],
        conditioner: Conditioner, *, total_steps: int, s0: int = 10, s1: int = 1280,
        p_mean: float = -1.1, p_std: float = 2.0, sample_steps: int = 1, num_samples: int = 16,
    ) -> None:  # fmt: skip
        super().__init__(model, schedule, image_shape, conditioner, sample_steps=sample_steps,
                         num_samples=num_samples)  # fmt: skip
        self.total_steps, self.s0, self.s1 = total_steps, s0, s1
        self.p_mean, self.p_std = p_mean, p_std

    @functools.lru_cache(maxsize=16)  # noqa: B019 - a few grids per run, the recipe lives as long
    def grid(self, num_levels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(timesteps, sigmas, p(pair)) of the N-level grid."""
        t, sigmas = karras_levels(self.schedule, num_levels)
        return t, sigmas, lognormal_level_probs(sigmas, self.p_mean, self.p_std)

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        x0, cond = self.batch_inputs(batch)
        num_levels = ct_discretization(step, self.total_steps, self.s0, self.s1)
        t, sigmas, probs = self.grid(num_levels)
        n = torch.multinomial(probs, x0.shape[0], replacement=True)  # (B,) lognormal pairs
        here, above = (t[n], sigmas[n]), (t[n + 1], sigmas[n + 1])
        z = torch.randn_like(x0)
        x_here = x0 + sigmas[n].reshape(-1, 1, 1, 1).to(x0) * z
        x_above = x0 + sigmas[n + 1].reshape(-1, 1, 1, 1).to(x0) * z
        with torch.no_grad():  # no target EMA: f itself, gradient stopped
            target = self.f(model, x_here, here, cond)
        pred = self.f(model, x_above, above, cond)
        weight = ct_weight(sigmas[n], sigmas[n + 1]).to(x0)  # (B,)
        loss = (weight * pseudo_huber(pred, target)).mean()
        return loss, {"num_levels": float(num_levels)}

    def describe(self) -> dict:
        return dict(kind="consistency_training", total_steps=self.total_steps, s0=self.s0,
                    s1=self.s1, p_mean=self.p_mean, p_std=self.p_std)  # fmt: skip
