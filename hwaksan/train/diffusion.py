"""The diffusion recipe: what the training loop needs to train a denoiser on images.

Unconditional or class-conditional (labels dropped to the null class with probability
`cond_drop_prob`, so classifier-free guidance works later — Ho & Salimans 2022); eps / x0 / v
targets; optional min-SNR-gamma weighting (Hang et al. 2023); the hybrid loss for a learned
variance (Nichol & Dhariwal 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.components import model_config
from hwaksan.diffusion.losses import diffusion_loss, hybrid_loss
from hwaksan.diffusion.parameterization import check_prediction_type
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.train.loop import Recipe


class DiffusionRecipe(Recipe):
    """Train `model(x_t, t, class_labels=...)` to predict `prediction_type` under `schedule`.

    Batches are dicts with "image" ([B, C, H, W] in [-1, 1]) and, when `num_classes` is set,
    "class_id" ([B] long); the null class id is `num_classes`.
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: NoiseSchedule,
        image_shape: tuple[int, int, int],
        *,
        prediction_type: str = "v_prediction",
        snr_gamma: float | None = None,
        learn_sigma: bool = False,
        num_classes: int | None = None,
        cond_drop_prob: float = 0.1,
        sampler: str = "ddim",
        sample_steps: int = 50,
        timestep_spacing: str = "trailing",
        num_samples: int = 16,
    ) -> None:
        check_prediction_type(prediction_type)
        self.model, self.schedule, self.image_shape = model, schedule, tuple(image_shape)
        self.prediction_type, self.snr_gamma, self.learn_sigma = (
            prediction_type,
            snr_gamma,
            learn_sigma,
        )
        self.num_classes, self.cond_drop_prob = num_classes, cond_drop_prob
        self.sampler, self.sample_steps, self.timestep_spacing = (
            sampler,
            sample_steps,
            timestep_spacing,
        )
        self.num_samples = num_samples

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        x0 = batch["image"]
        cond = {}
        if self.num_classes is not None:
            labels = batch["class_id"].to(x0.device)
            drop = torch.rand(labels.shape, device=labels.device) < self.cond_drop_prob
            cond["class_labels"] = torch.where(
                drop, torch.full_like(labels, self.num_classes), labels
            )
        if self.learn_sigma:
            loss = hybrid_loss(
                model, x0, self.schedule, prediction_type=self.prediction_type, cond=cond
            )
        else:
            loss = diffusion_loss(
                model, x0, self.schedule, prediction_type=self.prediction_type,
                snr_gamma=self.snr_gamma, cond=cond,
            )  # fmt: skip
        return loss, {}

    def sample_images(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """A fixed-seed grid (none if num_samples is 0); class-conditional ones show 0, 1, 2, ..."""
        n = self.num_samples
        if n == 0:
            return None
        from hwaksan.sampling import sample

        device = next(model.parameters()).device
        cond = None
        if self.num_classes is not None:
            cond = {"class_labels": torch.arange(n, device=device) % self.num_classes}
        generator = torch.Generator(device).manual_seed(0)
        samples = sample(
            self.denoiser(model), (n, *self.image_shape), schedule=self.schedule,
            sampler=self.sampler, steps=self.sample_steps, prediction_type=self.prediction_type,
            timestep_spacing=self.timestep_spacing, generator=generator, cond=cond,
        )  # fmt: skip
        return self.decode(samples).clamp(-1, 1)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Images from what the sampler makes (pixels here; a latent recipe decodes latents)."""
        return samples

    def denoiser(self, model: nn.Module):
        """The model as a sampler sees it: the mean half of a learned-variance output."""
        if not self.learn_sigma:
            return model
        from hwaksan.sampling.denoiser import mean_prediction

        return mean_prediction(model, self.image_shape[0])

    def describe(self) -> dict:
        return {
            "kind": "diffusion",
            "unet": model_config(self.model),
            "schedule": self.schedule.to_config(),
            "prediction_type": self.prediction_type,
            "learn_sigma": self.learn_sigma,
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
        }
