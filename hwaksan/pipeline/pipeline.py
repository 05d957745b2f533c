"""The `Pipeline`: a denoising network, its schedule, optional components, and `generate`.

`generate` runs the pipeline's `parts` (conditioners, then guides: `hwaksan.pipeline.parts`)
on its named inputs, then the sampler. Saving and loading it as a folder lives in
`hwaksan.model_folder`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import LAYOUT_SCALE
from hwaksan.images import to_pil
from hwaksan.pipeline.adapters import AdapterLoaders
from hwaksan.pipeline.concat import ConcatCondition
from hwaksan.pipeline.conditioners import ClassLabels, Prompts
from hwaksan.pipeline.guides import ClassifierFreeGuidance, ClassifierGuidance, LayoutGuidance
from hwaksan.pipeline.hooks import StepCallback
from hwaksan.pipeline.img2img import ImageToImage
from hwaksan.pipeline.inpaint import Inpainting
from hwaksan.pipeline.layouts import Layouts
from hwaksan.pipeline.lora import LoRAScale
from hwaksan.pipeline.parts import Part, Plan, check_inputs


def default_parts() -> list[Part]:
    """What every pipeline runs: conditioners first, then guides in the order they wrap, then
    the image inputs (img2img's start; inpainting, whose RePaint needs the guided model; what a
    concat-conditioned model reads, after inpainting has read the mask)."""
    return [ClassLabels(), Prompts(), Layouts(), ClassifierFreeGuidance(), ClassifierGuidance(),
            LayoutGuidance(), StepCallback(), LoRAScale(), ImageToImage(), Inpainting(),
            ConcatCondition()]  # fmt: skip


@dataclass
class Pipeline(AdapterLoaders):
    """A denoising network, its schedule and how to sample it: `generate(n, ...)` makes images.

    Optional components: an `autoencoder` (latent models: the sampler makes latents of
    `sample_shape`, decoded as `autoencoder.decode(latents / latent_scale)`), a `text_encoder`
    (text models: prompts become cross-attention context) and a noise-aware `classifier`
    (classifier guidance). `parts` read `generate`'s named inputs; append one to add a feature.
    Adapter folders (LoRA, textual inversion) load onto it: `AdapterLoaders`.
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
    layout_encoder: nn.Module | None = None  # layout-to-image: boxes with labels as context
    sample_shape: tuple[int, int, int] | None = None  # what the sampler makes; None: image_shape
    layout_scale: float = LAYOUT_SCALE  # layout guidance when `relations` come without a scale;
    # a model where it was measured to hurt stores 0 (shapes_t2i)
    condition: dict | None = None  # an image the model reads by concatenation (`pipeline.concat`)
    parts: list[Part] = field(default_factory=default_parts)

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
        self, n: int, sampler: str | None = None, steps: int | None = None, seed: int = 0,
        eta: float = 0.0, progress: bool | None = None, output_type: str = "pil",
        batch_size: int = 64, **inputs: Any,
    ) -> list[Image.Image] | torch.Tensor:  # fmt: skip
        """n images from seed `seed` (same seed, same images whatever `batch_size`).

        Named `inputs` go to the parts that read them: `class_labels`, `prompt`, `negative_prompt`,
        `guidance_scale` (classifier-free, Ho & Salimans 2022), `classifier_scale` (Dhariwal &
        Nichol 2021), `relations` and `layout_scale` (`guidance.layout`), `callback` (each
        sampler step, `pipeline.hooks`), `image` with `strength` / `invert` (img2img,
        `pipeline.img2img`) or `mask_image` (inpainting, `pipeline.inpaint`), `noise_level`
        (super-resolution, `pipeline.concat`), `lora_scale` (`pipeline.lora`); see each
        part.
        `output_type` "pil" gives PIL images, "pt" a [n, C, H, W] tensor in [-1, 1]; `progress`
        None shows a bar when stderr is a terminal, False never.
        """
        plan, wrappers = self._plan(n, sampler, steps, seed, eta, output_type, inputs)
        chunks = [self._batch(plan, wrappers, slice(start, start + batch_size), progress)
                  for start in range(0, n, batch_size)]  # fmt: skip
        images = torch.cat(chunks)  # (n, C, H, W)
        return images if output_type == "pt" else to_pil(images)

    def _batch(self, plan: Plan, wrappers: list, part: slice, progress) -> torch.Tensor:
        """The images [b, C, H, W] of one batch: its wrapped model, its start, the sampler from
        the plan's start step, decoding, then the plan's finishing touches."""
        from hwaksan.sampling import sample
        from hwaksan.sampling.denoiser import mean_prediction

        model = mean_prediction(self.unet, self.sample_shape[0])
        for wrap in wrappers:
            model = wrap(model, part)
        x = plan.start(model, part) if plan.start else plan.x_T[part]
        x = x.to(self.device)  # (b, *sample_shape)
        if plan.start_step < plan.steps:  # (img2img at strength 0 runs no step)
            x = sample(
                model, tuple(x.shape), schedule=self.schedule, sampler=plan.sampler,
                steps=plan.steps, eta=plan.eta, prediction_type=self.prediction_type,
                timestep_spacing=self.timestep_spacing, generator=plan.generator, x_T=x,
                cond=plan.batch(plan.cond, part) or None, progress=progress,
                start_step=plan.start_step, **plan.sample_args,
            )  # fmt: skip
        images = self.decode(x).clamp(-1, 1).cpu()  # (b, C, H, W)
        for finish in plan.finish:
            images = finish(images, part)
        return images

    def _plan(self, n, sampler, steps, seed, eta, output_type, inputs) -> tuple[Plan, list]:
        """The checked call: sampler settings, starting noise, and each part's preparation."""
        sampler, steps = sampler or self.sampler, steps or self.steps
        try:
            self._check_sampler_args(sampler, steps, eta)
        except ValueError as e:  # a bad sampler, step count or eta: the user's input
            raise HwaksanError(str(e)) from e
        if output_type not in ("pil", "pt"):
            raise HwaksanError(f"unknown output_type {output_type!r}; use 'pil' or 'pt'")
        check_inputs(self.parts, inputs)
        generator = torch.Generator().manual_seed(seed)
        x_T = torch.randn((n, *self.sample_shape), generator=generator)  # (n, *sample_shape)
        plan = Plan(n, sampler, steps, x_T, generator, eta)
        wrappers = [part.prepare(self, plan, inputs) for part in self.parts]
        return plan, [wrap for wrap in wrappers if wrap is not None]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """What the sampler makes, from images [B, C, H, W] in [-1, 1]: the images themselves, or
        their scaled latents `encode_latents(x) * latent_scale` (the inverse of `decode`)."""
        if self.autoencoder is None:
            return images.to(self.device)
        return self.autoencoder.encode_latents(images.to(self.device)) * self.latent_scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images from what the sampler made: the autoencoder's decoding for latent models."""
        if self.autoencoder is None:
            return latents
        return self.autoencoder.decode(latents / self.latent_scale)

    def encode_prompt(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Cross-attention inputs per prompt (diffusers' `encode_prompt`); each distinct prompt
        runs through the text encoder once."""
        distinct = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
        encoding = self.text_encoder(list(distinct))
        rows = torch.tensor([distinct[p] for p in prompts])
        return {
            "context": encoding.hidden_states[rows].to(self.device),  # (n, L, D)
            "context_mask": encoding.attention_mask[rows].to(self.device),  # (n, L)
        }

    def _check_sampler_args(self, sampler: str, steps: int, eta: float) -> None:
        """The samplers' own argument checks, before any work is done."""
        from hwaksan.sampling.sample import check_sample_args

        check_sample_args(
            sampler, steps, self.timestep_spacing, self.schedule,
            eta=eta, prediction_type=self.prediction_type,
        )  # fmt: skip

    def save(
        self, path: str | Path, unet_ema: nn.Module | None = None, dtype=torch.float32
    ) -> Path:
        """Write the model folder (atomically: a temporary folder renamed into place); an
        attachment's processor weights (an IP-Adapter) are refused: the base is saved without."""
        from hwaksan.model_folder import save_pipeline
        from hwaksan.nets.adapters import lora_layers

        if any(lora_layers(m) for m in (self.unet, self.text_encoder) if m is not None):
            raise HwaksanError(
                "the model carries LoRA layers: save them with save_lora_weights, or bake them "
                "in with fuse_lora() then unload_lora_weights() first"
            )

        if any(".processor." in name for name in self.unet.state_dict()):
            raise HwaksanError(
                "the U-Net carries attention-processor weights (an IP-Adapter); they live in "
                "their own adapter folder: unload_ip_adapter() first, then save the base"
            )
        return save_pipeline(self, path, unet_ema, dtype)
