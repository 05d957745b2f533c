"""What the few-step recipes (progressive distillation, consistency distillation and training)
share: a conditioner for the batch, the schedule whose timesteps the networks read, and a
progress grid drawn with the sampler the student is made for."""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.train.conditioners import Conditioner
from hwaksan.train.loop import Recipe


class FewStepRecipe(Recipe):
    """Base of the distillation recipes: `model` is the student, sampled by `sampler` in
    `sample_steps` steps with `prediction_type` for the progress grid."""

    sampler = "ddim"
    prediction_type = "v_prediction"

    def __init__(
        self,
        model: nn.Module,
        schedule: NoiseSchedule,
        image_shape: tuple[int, int, int],
        conditioner: Conditioner,
        *,
        sample_steps: int = 1,
        num_samples: int = 16,
    ) -> None:
        conditioner.check(model)
        self.model, self.schedule, self.image_shape = model, schedule, tuple(image_shape)
        self.conditioner = conditioner
        self.sample_steps, self.num_samples = sample_steps, num_samples

    def batch_inputs(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """(x0 [B, C, H, W], the model's keyword arguments) of a training batch."""
        batch = self.conditioner.drop(batch)
        return batch["image"], self.conditioner.cond(batch, batch["image"].device)

    def sample_images(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """A fixed-seed grid from the student, with the sampler it is made for."""
        if not self.num_samples:
            return None
        from hwaksan.sampling import sample

        device = next(model.parameters()).device
        model, cond = self.conditioner.sample_inputs(model, self.num_samples, device)
        return sample(
            model, (self.num_samples, *self.image_shape), schedule=self.schedule,
            sampler=self.sampler, steps=self.sample_steps, prediction_type=self.prediction_type,
            timestep_spacing="trailing", generator=torch.Generator(device).manual_seed(0),
            cond=cond,
        ).clamp(-1, 1)  # fmt: skip
