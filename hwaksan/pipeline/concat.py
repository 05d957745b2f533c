"""The image a concat-conditioned model reads (`nets.conditions`): a super-resolution model's
low-res `image` (at `noise_level`), or a dedicated inpainting model's mask and masked sample."""

from __future__ import annotations

from typing import Any

import torch

from hwaksan.errors import HwaksanError
from hwaksan.nets import conditions
from hwaksan.pipeline.image_input import downsample_mask, image_batch
from hwaksan.pipeline.parts import Part, Plan


class ConcatCondition(Part):
    """`image` (+ `noise_level`) for a super-resolution model; after `Inpainting` has read
    `image` and `mask_image`, the concatenated mask for an inpainting model. The same input goes
    to `cond` and `uncond` (guidance steers the prompt, not the image)."""

    inputs = ("image", "noise_level")

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> None:
        kind = (pipe.condition or {}).get("kind")
        if kind is None:
            if inputs.get("noise_level") is not None:
                raise HwaksanError("noise_level is a super-resolution model's input")
            return
        if kind == "super_resolution":
            concat, level = _super_resolution(pipe, plan, inputs)
            for cond in (plan.cond, plan.uncond):
                cond.update(concat=concat, class_labels=level)
            return
        if "mask" not in plan.per_image:
            raise HwaksanError("this inpainting model needs image= and mask_image=")
        keep = 1 - downsample_mask(plan.per_image["mask"], pipe.sample_shape[1:])
        sample = pipe.encode(plan.per_image["image"])  # (n, *sample_shape)
        concat = conditions.inpainting_concat(sample, keep.to(sample.device))
        for cond in (plan.cond, plan.uncond):
            cond["concat"] = concat


def _super_resolution(pipe, plan: Plan, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(concat [n, c, h, w], noise level [n]) from the low-res `image` at `noise_level` (its
    augmentation noise drawn from the seed's generator)."""
    condition, n = pipe.condition, plan.n
    if inputs.get("image") is None:
        raise HwaksanError(f"this super-resolution model needs image= (low-res, "
                           f"{condition['low_res']} px)")  # fmt: skip
    if inputs.get("class_labels") is not None:
        raise HwaksanError("a super-resolution model takes no class_labels (see noise_level)")
    r = condition["low_res"]
    low = image_batch(inputs["image"], n, (pipe.image_shape[0], r, r), "image (low-res)")
    level = inputs.get("noise_level")
    level = condition["noise_level"] if level is None else level
    if isinstance(level, bool) or not isinstance(level, int):
        raise HwaksanError(f"noise_level must be a whole number, got {level!r}")
    if not 0 <= level < condition["noise_levels"]:
        raise HwaksanError(f"noise_level must be in 0..{condition['noise_levels'] - 1}")
    levels = torch.full((n,), level, dtype=torch.long)
    noise = torch.randn(low.shape, generator=plan.generator)
    low = conditions.augment_low_res(low, levels, condition, noise)
    concat = conditions.low_res_concat(low, pipe.sample_shape[-1])
    return concat.to(pipe.device), levels.to(pipe.device)
