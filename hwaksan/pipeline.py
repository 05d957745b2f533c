"""The `Pipeline`: a denoising network, its schedule and optional components, and `generate`.

Saving and loading it as a folder lives in `hwaksan.model_folder`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import LAYOUT_SCALE, layout_guidance, parse_relations
from hwaksan.images import to_pil


@dataclass
class Pipeline:
    """A denoising network, its schedule and how to sample it: `generate(n, ...)` makes images.

    Optional components: an `autoencoder` (latent models: the sampler makes latents of
    `sample_shape`, decoded as `autoencoder.decode(latents / latent_scale)`), a `text_encoder`
    (text models: prompts become cross-attention context) and a noise-aware `classifier`
    (classifier guidance).
    """

    unet: nn.Module
    schedule: NoiseSchedule
    prediction_type: str
    image_shape: tuple[int, int, int]  # (C, H, W) of the images it outputs
    num_classes: int | None = None
    learn_sigma: bool = False
    sampler: str = "ddim"
    steps: int = 50
    timestep_spacing: str = "trailing"
    class_names: list[str] | None = None
    data: dict = field(default_factory=dict)
    autoencoder: nn.Module | None = None
    latent_scale: float = 1.0
    text_encoder: nn.Module | None = None
    classifier: nn.Module | None = None
    sample_shape: tuple[int, int, int] | None = None  # what the sampler makes; None: image_shape
    layout_scale: float = LAYOUT_SCALE  # layout guidance when `relations` come without a scale;
    # a model where it was measured to hurt stores 0 (shapes_t2i)

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        self.sample_shape = tuple(self.sample_shape or self.image_shape)
        if self.autoencoder is not None:
            from hwaksan.nets.autoencoder.base import check_latent_fit

            check_latent_fit(self.autoencoder, self.sample_shape, self.image_shape, self.unet)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        n: int,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        class_labels: list[int] | torch.Tensor | None = None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float | None = None,
        classifier_scale: float | None = None,
        eta: float = 0.0,
        progress: bool = False,
        output_type: str = "pil",
        batch_size: int = 64,
        relations: Sequence | None = None,
        layout_scale: float | None = None,
    ) -> list[Image.Image] | torch.Tensor:
        """n images from seed `seed` (same seed, same images whatever `batch_size`).

        `class_labels` (one per image, or one for all) for class-conditional models; `prompt` and
        `negative_prompt` for text models. `guidance_scale` != 1 mixes in the unconditional
        prediction (classifier-free guidance, Ho & Salimans 2022); `classifier_scale` follows the
        classifier's gradient (Dhariwal & Nichol 2021). `relations` steer where the prompt's
        objects go by their cross-attention (`guidance.layout`): ("red circle", "left of",
        "blue square") triples of phrases from the prompt, one list for all images or one per
        image, at `layout_scale` (None: the model's own `self.layout_scale`; 0: off).
        `output_type` "pil" gives PIL images, "pt" a [n, C, H, W] tensor in [-1, 1].
        """
        from hwaksan.sampling import sample

        sampler, steps = sampler or self.sampler, steps or self.steps
        try:
            self._check_sampler_args(sampler, steps, eta)
        except ValueError as e:  # a bad sampler, step count or eta: the user's input
            raise HwaksanError(str(e)) from e
        if output_type not in ("pil", "pt"):
            raise HwaksanError(f"unknown output_type {output_type!r}; use 'pil' or 'pt'")
        labels = self._labels(n, class_labels, classifier_scale)
        cond, uncond = self._conditioning(n, labels, prompt, negative_prompt)
        generator = torch.Generator().manual_seed(seed)
        x_T = torch.randn((n, *self.sample_shape), generator=generator)
        guide = self._classifier_guide(classifier_scale, labels, sampler, steps)
        layout_scale = self.layout_scale if layout_scale is None else layout_scale
        layout = self._layout(n, prompt, relations, layout_scale)
        chunks = []
        for start in range(0, n, batch_size):
            part = slice(start, start + batch_size)
            x = x_T[part].to(self.device)
            model = self._denoiser(
                guidance_scale, {k: v[part] for k, v in uncond.items()},
                guide, None if labels is None else labels[part],
            )  # fmt: skip
            if layout:
                model = layout_guidance(
                    model, self.unet, layout[part], layout_scale, schedule=self.schedule,
                    prediction_type=self.prediction_type,
                )  # fmt: skip
            latents = sample(
                model, tuple(x.shape), schedule=self.schedule, sampler=sampler, steps=steps,
                eta=eta, prediction_type=self.prediction_type,
                timestep_spacing=self.timestep_spacing, generator=generator, x_T=x,
                cond={k: v[part] for k, v in cond.items()} or None, progress=progress,
            )  # fmt: skip
            chunks.append(self.decode(latents).clamp(-1, 1).cpu())
        images = torch.cat(chunks)
        return images if output_type == "pt" else to_pil(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images from what the sampler made: the autoencoder's decoding for latent models."""
        if self.autoencoder is None:
            return latents
        return self.autoencoder.decode(latents / self.latent_scale)

    def _layout(self, n: int, prompt, relations, layout_scale: float) -> list | None:
        """Per image, the `Relation`s of its prompt (token positions), or None when unused."""
        if not layout_scale or relations is None:
            return None
        if self.text_encoder is None:
            raise HwaksanError("relations steer a text model's cross-attention; this is not one")
        relations = list(relations)
        if relations and isinstance(relations[0][0], str):  # one list of triples for all images
            relations = [relations]
        if len(relations) == 1:
            relations = relations * n
        if len(relations) != n:
            raise HwaksanError(f"relations must be one list of triples or {n} lists, one per image")
        prompts = _prompt_list(prompt, n, "prompt")
        tokenize = self.text_encoder.tokenize
        return [parse_relations(tokenize, p, r) for p, r in zip(prompts, relations)]

    def _check_sampler_args(self, sampler: str, steps: int, eta: float) -> None:
        """The samplers' own argument checks, before any work is done."""
        from hwaksan.sampling.sample import check_sample_args

        check_sample_args(
            sampler, steps, self.timestep_spacing, self.schedule,
            eta=eta, prediction_type=self.prediction_type,
        )  # fmt: skip

    def _labels(self, n: int, class_labels, classifier_scale=None) -> torch.Tensor | None:
        """Class labels as a LongTensor on the model's device, checked against num_classes.

        An unconditional model takes labels only as a guiding classifier's targets."""
        if self.num_classes is None and classifier_scale is None:
            if class_labels is not None:
                raise HwaksanError("this model is unconditional; it takes no class labels")
            return None
        num_classes = self.num_classes if self.num_classes is not None else _classes(self)
        if class_labels is None:
            if self.num_classes is None:
                raise HwaksanError("classifier_scale needs class_labels: the classes to steer to")
            return torch.full((n,), self.num_classes, device=self.device)  # the null class
        labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        if len(labels) == 1:
            labels = labels.expand(n)
        if len(labels) != n or bool(((labels < 0) | (labels > num_classes)).any()):
            raise HwaksanError(
                f"class_labels must be {n} ids in 0..{num_classes - 1} "
                f"({num_classes} = unconditional)"
            )
        return labels.to(self.device)

    def _conditioning(self, n: int, labels, prompt, negative_prompt) -> tuple[dict, dict]:
        """The network's conditioning inputs per image, and their unconditional counterparts
        (null class; empty or negative prompt) for classifier-free guidance."""
        if self.text_encoder is None:
            if prompt is not None or negative_prompt is not None:
                raise HwaksanError("this model is not a text model; it takes no prompt")
            if labels is None or self.num_classes is None:
                return {}, {}
            return {"class_labels": labels}, {
                "class_labels": torch.full_like(labels, self.num_classes)
            }
        cond = self._encode_prompts(_prompt_list(prompt, n, "prompt"))
        uncond = self._encode_prompts(_prompt_list(negative_prompt, n, "negative_prompt"))
        return cond, uncond

    def _encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Cross-attention inputs per image; each distinct prompt runs through the encoder once."""
        distinct = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
        encoding = self.text_encoder(list(distinct))
        rows = torch.tensor([distinct[p] for p in prompts])
        return {
            "context": encoding.hidden_states[rows].to(self.device),  # (n, L, D)
            "context_mask": encoding.attention_mask[rows].to(self.device),  # (n, L)
        }

    def _denoiser(self, guidance_scale, uncond: dict, guide, labels):
        """The network as the sampler calls it: mean half only, guided if asked."""
        from hwaksan.sampling.denoiser import mean_prediction
        from hwaksan.sampling.guidance import classifier_free_guidance

        model = mean_prediction(self.unet, self.sample_shape[0])
        if guidance_scale is not None and guidance_scale != 1.0:
            if not uncond:
                raise HwaksanError("guidance_scale needs a class-conditional or text model")
            model = classifier_free_guidance(model, guidance_scale, uncond)
        return model if guide is None else guide(model, class_labels=labels)

    def _classifier_guide(self, classifier_scale, labels, sampler: str, steps: int):
        """`guide(model, class_labels=...)`: `model` steered toward the labels by the attached
        classifier's gradient (Dhariwal & Nichol 2021) — the mean-shift form for ancestral DDPM,
        the eps form for the others. None without a classifier_scale. Checked once, up front."""
        if not classifier_scale:
            return None
        from hwaksan.sampling.classifier_guidance import classifier_guidance
        from hwaksan.sampling.timesteps import discrete_timesteps

        classifier = _checked_classifier(self, labels)
        ddpm_timesteps = None
        if sampler == "ddpm":
            ddpm_timesteps = discrete_timesteps(self.schedule, steps, self.timestep_spacing)
        return functools.partial(
            classifier_guidance, classifier=classifier, classifier_scale=classifier_scale,
            schedule=self.schedule, prediction_type=self.prediction_type,
            ddpm_timesteps=ddpm_timesteps,
        )  # fmt: skip

    def save(
        self, path: str | Path, unet_ema: nn.Module | None = None, dtype=torch.float32
    ) -> Path:
        """Write the model folder (atomically: a temporary folder renamed into place)."""
        from hwaksan.model_folder import save_pipeline

        return save_pipeline(self, path, unet_ema, dtype)


def _checked_classifier(pipe: Pipeline, labels: torch.Tensor | None) -> nn.Module:
    """The attached classifier, on the model's device, once it fits the model and the labels."""
    classifier = pipe.classifier
    if classifier is None:
        raise HwaksanError("classifier_scale needs a classifier attached to the pipeline")
    config = classifier.config
    if pipe.num_classes is not None and config.num_classes != pipe.num_classes:
        raise HwaksanError(
            f"the classifier knows {config.num_classes} classes but the model "
            f"{pipe.num_classes}; attach a classifier trained on the model's classes"
        )
    shape = (config.in_channels, config.resolution, config.resolution)
    if shape != tuple(pipe.sample_shape):
        raise HwaksanError(f"the classifier reads {shape} inputs but the model makes "
                           f"{tuple(pipe.sample_shape)}")  # fmt: skip
    if config.schedule is not None and config.schedule != pipe.schedule.to_config():
        raise HwaksanError("the classifier was trained on another noise schedule than the model's")
    if labels is None or bool((labels >= config.num_classes).any()):
        raise HwaksanError(
            f"classifier_scale needs class_labels in 0..{config.num_classes - 1}: "
            "the classes to steer to"
        )
    return classifier.to(pipe.device)


def _classes(pipe: Pipeline) -> int:
    """How many classes the guiding classifier knows."""
    if pipe.classifier is None:
        raise HwaksanError("classifier_scale needs a classifier attached to the pipeline")
    return int(pipe.classifier.config.num_classes)


def _prompt_list(prompt: str | list[str] | None, n: int, what: str) -> list[str]:
    """One prompt per image: a string (or one-element list) repeats; None is the empty prompt."""
    prompts = [prompt or ""] if prompt is None or isinstance(prompt, str) else list(prompt)
    if len(prompts) == 1:
        prompts = prompts * n
    if len(prompts) != n or not all(isinstance(p, str) for p in prompts):
        raise HwaksanError(f"{what} must be one string or {n} strings (one per image)")
    return prompts
