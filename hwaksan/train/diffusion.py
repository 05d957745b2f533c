"""The diffusion recipe: what the training loop needs to train a denoiser, composed of parts.

A *space* (pixels, or an autoencoder's latents: `train.space`), a *conditioner* (nothing, class
labels, prompts: `train.conditioners`, `train.text`; dropped with `cond_drop_prob` for
classifier-free guidance, Ho & Salimans 2022) and extra *loss terms* (`train.terms`; the token
grounding loss) around one denoising loss: eps / x0 / v targets, optional min-SNR-gamma weighting
(Hang et al. 2023), the hybrid loss for a learned variance (Nichol & Dhariwal 2021).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from hwaksan.components import model_config
from hwaksan.diffusion.losses import diffusion_loss, hybrid_loss
from hwaksan.diffusion.parameterization import check_prediction_type
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.train.conditioners import ClassLabels, Conditioner, Unconditional
from hwaksan.train.loop import Recipe
from hwaksan.train.space import LatentSpace, PixelSpace
from hwaksan.train.terms import LossTerm


class DiffusionRecipe(Recipe):
    """Train `model(x_t, t, **cond)` to predict `prediction_type` under `schedule`.

    Batches are dicts with "image" ([B, *image_shape], in the space's terms: pixels in [-1, 1] or
    scaled latents) and what the conditioner reads ("class_id", "caption"). `num_classes` and
    `cond_drop_prob` are a shortcut for `conditioner=ClassLabels(num_classes, cond_drop_prob)`.
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: NoiseSchedule,
        image_shape: tuple[int, int, int],
        *,
        space: PixelSpace | LatentSpace | None = None,
        conditioner: Conditioner | None = None,
        terms: Sequence[LossTerm] = (),
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
        if conditioner is not None and num_classes is not None:
            raise HwaksanError("give class labels as num_classes or as the conditioner, not both")
        if conditioner is None:
            labels = num_classes is not None
            conditioner = ClassLabels(num_classes, cond_drop_prob) if labels else Unconditional()
        conditioner.check(model)
        self.model, self.schedule, self.image_shape = model, schedule, tuple(image_shape)
        self.space, self.conditioner, self.terms = space or PixelSpace(), conditioner, list(terms)
        self.prediction_type, self.snr_gamma = prediction_type, snr_gamma
        self.learn_sigma = learn_sigma
        self.sampler, self.sample_steps = sampler, sample_steps
        self.timestep_spacing, self.num_samples = timestep_spacing, num_samples

    @property
    def num_classes(self) -> int | None:
        return self.conditioner.num_classes

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        batch = self.conditioner.drop(batch)  # the condition dropout's draws come first
        cond = self.conditioner.cond(batch, batch["image"].device)
        with contextlib.ExitStack() as stack:
            recorded = [stack.enter_context(term.recording(model)) for term in self.terms]
            loss = self.denoising_loss(model, batch["image"], cond)
        logs = {}
        for term, record in zip(self.terms, recorded):
            extra, term_logs = term(model, batch, cond, record)
            loss, logs = loss + extra, {**logs, **term_logs}
        return loss, logs

    def denoising_loss(self, model: nn.Module, x0: torch.Tensor, cond: dict) -> torch.Tensor:
        """L_simple (min-SNR weighted with `snr_gamma`), or the hybrid loss (learned variance)."""
        if self.learn_sigma:
            return hybrid_loss(
                model, x0, self.schedule, prediction_type=self.prediction_type, cond=cond
            )
        return diffusion_loss(
            model, x0, self.schedule, prediction_type=self.prediction_type,
            snr_gamma=self.snr_gamma, cond=cond,
        )  # fmt: skip

    def sample_images(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """A fixed-seed grid (none if num_samples is 0) in the conditioner's sample conditions,
        decoded by the space."""
        n = self.num_samples
        if n == 0:
            return None
        from hwaksan.sampling import sample

        device = next(model.parameters()).device
        model, cond = self.conditioner.sample_inputs(model, n, device)
        generator = torch.Generator(device).manual_seed(0)
        samples = sample(
            self.denoiser(model), (n, *self.image_shape), schedule=self.schedule,
            sampler=self.sampler, steps=self.sample_steps, prediction_type=self.prediction_type,
            timestep_spacing=self.timestep_spacing, generator=generator, cond=cond,
        )  # fmt: skip
        return self.space.decode(samples).clamp(-1, 1)

    def denoiser(self, model: nn.Module):
        """The model as a sampler sees it: the mean half of a learned-variance output."""
        if not self.learn_sigma:
            return model
        from hwaksan.sampling.denoiser import mean_prediction

        return mean_prediction(model, self.image_shape[0])

    def describe(self) -> dict:
        """The same JSON as the four recipe classes this one replaced ("kind" diffusion,
        latent_diffusion, text_diffusion, latent_text_diffusion), so their checkpoints resume."""
        fields = {
            "kind": self.space.kind_prefix + self.conditioner.kind,
            "unet": model_config(self.model),
            "schedule": self.schedule.to_config(),
            "prediction_type": self.prediction_type,
            "learn_sigma": self.learn_sigma,
            "num_classes": self.conditioner.num_classes,
            "image_shape": list(self.image_shape),
            **self.space.describe(),
            **self.conditioner.describe(),
        }
        for term in self.terms:
            fields.update(term.describe())
        return fields
