"""Image-to-image: SDEdit (Meng et al. 2022) on any model, and DDIM inversion as its exact end.

`generate(prompt=..., image=img, strength=s)` encodes the image (through the autoencoder on a
latent model), noises it to the level where the last int(steps * s) steps begin (diffusers'
img2img rule, `sampling.start`) and samples from there: strength 0 runs no step and returns the
image (for a latent model, its autoencoder round trip D(E(x))), strength 1 starts from the seed's
noise alone and equals plain generation. `invert=True` starts instead from the image's DDIM
inversion to that level (Song et al. 2021, sec. 4.3), with the batch's own (guided) model:
DDIM then returns to the image (up to the inversion's one-step approximation).
"""

from __future__ import annotations

from typing import Any

import torch

from hwaksan.errors import HwaksanError
from hwaksan.pipeline.image_input import image_batch
from hwaksan.pipeline.parts import Part, Plan


class ImageToImage(Part):
    """`image` (+ `strength`, default 0.8, and `invert`): start part-way from the image.
    Inert on models that read `image` as their condition (super-resolution, inpainting) and
    with a `mask_image` (inpainting, `pipeline.inpaint`)."""

    inputs = ("image", "strength", "invert")

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> None:
        strength, invert = inputs.get("strength"), bool(inputs.get("invert", False))
        if inputs.get("image") is None or inputs.get("mask_image") is not None:
            if strength is not None or invert:
                raise HwaksanError("strength and invert need an image= to start from")
            return
        if pipe.condition is not None:  # the image is the model's condition, not a start
            if strength is not None or invert:
                raise HwaksanError(f"this {pipe.condition['kind']} model takes no strength")
            return
        strength = 0.8 if strength is None else float(strength)
        if not 0 <= strength <= 1:
            raise HwaksanError(f"strength must be between 0 and 1, got {strength}")
        if invert and (plan.sampler != "ddim" or plan.eta):
            raise HwaksanError("invert=True needs the deterministic DDIM sampler (eta 0)")
        x0 = pipe.encode(image_batch(inputs["image"], plan.n, pipe.image_shape)).cpu()
        plan.start_step = start_step(plan.steps, strength)
        if invert:
            plan.start = _inversion(pipe, plan, x0)
        elif plan.start_step > 0:  # strength 1 keeps the seed's noise: plain generation
            plan.x_T = _noised(pipe, plan, x0)


def start_step(steps: int, strength: float) -> int:
    """diffusers' rule, steps - int(steps * strength), with strength 0 running no step."""
    return steps - min(int(steps * strength), steps)


def _noised(pipe, plan: Plan, x0: torch.Tensor) -> torch.Tensor:
    """x0 noised with the seed's noise to the level `plan.start_step` reads (or x0 itself when
    no step is left)."""
    from hwaksan.sampling.start import noise_to_start

    if plan.start_step == plan.steps:
        return x0
    return noise_to_start(
        x0, plan.x_T, schedule=pipe.schedule, sampler=plan.sampler, steps=plan.steps,
        start_step=plan.start_step, timestep_spacing=pipe.timestep_spacing,
    )  # fmt: skip


def _inversion(pipe, plan: Plan, x0: torch.Tensor):
    """The batch's start: its images' DDIM inversion up to `start_step`'s level, by the same
    wrapped model (conditions and guidance) the sampler then runs."""
    from hwaksan.sampling.inversion import ddim_invert

    def start(model, part: slice) -> torch.Tensor:
        return ddim_invert(
            model, x0[part].to(pipe.device), pipe.schedule, plan.steps,
            prediction_type=pipe.prediction_type, timestep_spacing=pipe.timestep_spacing,
            cond=plan.batch(plan.cond, part) or None, start_step=plan.start_step,
        )  # fmt: skip

    return start
