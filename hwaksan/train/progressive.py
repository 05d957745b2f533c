"""Progressive distillation (Salimans & Ho 2022, Alg. 2): a student learns in one deterministic
DDIM step what its teacher does in two; the student then teaches, halving the steps again.

One halving is this recipe on the one loop. What the official code does and a naive version gets
wrong, done here:
- the target is the x0 that makes the student's one DDIM step land where the teacher's two did
  (`diffusion.consistency.progressive_target`), not the teacher's x0 prediction;
- the loss on x is weighted max(SNR, 1) ("truncated SNR"), stable as SNR -> 0;
- the student keeps the teacher's v-prediction (x or v, never eps, at SNR -> 0);
- the grid is the teacher's own (its cosine schedule's timesteps, "trailing": the student's N
  levels are every other one of the teacher's 2N), and each halving decays its lr to 0
  (`runs.distill`);
- a conditional teacher's classifier-free guidance is folded into the first teacher
  (`guidance_scale`), so the student needs no guidance at sampling time.
The student samples with the "euler" sampler, which on a VP schedule's grid is DDIM exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.diffusion.consistency import progressive_target, truncated_snr_weight
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.sampling.guidance import classifier_free_guidance
from hwaksan.sampling.timesteps import euler_sigmas
from hwaksan.train.conditioners import Conditioner
from hwaksan.train.few_step import FewStepRecipe
from hwaksan.train.teacher import ddim_step, frozen, x0_at

SPACING = "trailing"  # the only spacing whose N-step grid is every other level of the 2N one


def student_grid(schedule: NoiseSchedule, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps [steps], sigmas [steps + 1] ending in 0) a `steps`-step student visits: the
    "euler" sampler's trailing table."""
    timesteps, sigmas = euler_sigmas(schedule, steps, SPACING)
    return timesteps.double(), sigmas


class ProgressiveDistillation(FewStepRecipe):
    """One halving: the student (`model`, started as the teacher) learns `student_steps` DDIM
    steps from the teacher's 2 * `student_steps`."""

    sampler = "euler"

    def __init__(
        self, model: nn.Module, teacher: nn.Module, schedule: NoiseSchedule,
        image_shape: tuple[int, int, int], conditioner: Conditioner, *, student_steps: int,
        prediction_type: str = "v_prediction", guidance_scale: float = 1.0, num_samples: int = 16,
    ) -> None:  # fmt: skip
        super().__init__(model, schedule, image_shape, conditioner, sample_steps=student_steps,
                         num_samples=num_samples)  # fmt: skip
        self.teacher = frozen(teacher)
        self.prediction_type, self.guidance_scale = prediction_type, guidance_scale
        self.student_steps = student_steps
        self.t, self.sigmas = student_grid(schedule, 2 * student_steps)  # the teacher's grid

    def teacher_x0(self, x: torch.Tensor, i: torch.Tensor, cond: dict) -> torch.Tensor:
        """The teacher's (guided) x0 at level i [B] of its grid."""
        model = self.teacher
        if self.guidance_scale != 1.0 and "class_labels" in cond:
            null = torch.full_like(cond["class_labels"], self.conditioner.num_classes)
            model = classifier_free_guidance(model, self.guidance_scale, {"class_labels": null})
        return x0_at(model, x, self.sigmas[i], self.t[i], self.prediction_type, cond)

    @torch.no_grad()
    def target(self, x: torch.Tensor, i: torch.Tensor, cond: dict) -> torch.Tensor:
        """Two teacher DDIM steps from level i to i + 2, and the x0 of one step that lands there."""
        sigmas = self.sigmas
        x_mid = ddim_step(self.teacher_x0(x, i, cond), x, sigmas[i], sigmas[i + 1])
        x_next = ddim_step(self.teacher_x0(x_mid, i + 1, cond), x_mid, sigmas[i + 1], sigmas[i + 2])
        ratio_shape = (-1, *([1] * (x.ndim - 1)))
        sigma = sigmas[i].reshape(ratio_shape).to(x)
        sigma_next = sigmas[i + 2].reshape(ratio_shape).to(x)
        return progressive_target(x, x_next, sigma, sigma_next)

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        x0, cond = self.batch_inputs(batch)
        i = 2 * torch.randint(0, self.student_steps, (x0.shape[0],))  # (B,) the student's levels
        sigma = self.sigmas[i]  # (B,) float64
        x = x0 + sigma.reshape(-1, 1, 1, 1).to(x0) * torch.randn_like(x0)  # x = x0 + sigma eps
        target = self.target(x, i, cond)
        pred = x0_at(model, x, sigma, self.t[i], self.prediction_type, cond)
        error = (pred - target).float().square().flatten(1).mean(1)  # (B,)
        return (truncated_snr_weight(sigma).to(error) * error).mean(), {}

    def describe(self) -> dict:
        return dict(kind="progressive_distillation", student_steps=self.student_steps,
                    guidance_scale=self.guidance_scale)  # fmt: skip
