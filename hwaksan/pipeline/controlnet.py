"""ControlNet on a pipeline (Zhang et al. 2023): `control_image` and
`controlnet_conditioning_scale`, diffusers' names.

The part puts the control image into both `cond` and `uncond` (classifier-free guidance batches
them, as diffusers does), and wraps the network innermost, below every guide: each call runs the
ControlNet on (x_t, t, control image, prompt) and hands its residuals to the locked U-Net.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from hwaksan.errors import HwaksanError
from hwaksan.pipeline.parts import Model, Part, Plan, Wrapper

# what the ControlNet reads of the network's inputs (not an attention processor's keywords)
_NETWORK_INPUTS = ("class_labels", "context", "context_mask", "added_embedding")


class ControlNetPart(Part):
    """`control_image`: a PIL image, a list of n, or a float tensor (3, H, W) / (n, 3, H, W) in
    [0, 1], of the model's image size; `controlnet_conditioning_scale` (default 1; 0 is the base
    model exactly) multiplies the residuals."""

    inputs = ("control_image", "controlnet_conditioning_scale")

    def __init__(self, controlnet: torch.nn.Module) -> None:
        self.controlnet = controlnet

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        image, scale = inputs.get("control_image"), inputs.get("controlnet_conditioning_scale")
        scale = 1.0 if scale is None else float(scale)
        if image is None:
            raise HwaksanError(
                "a ControlNet is attached: generate needs control_image= (the control map)"
            )
        hint = control_tensor(image, plan.n, tuple(pipe.image_shape[1:])).to(pipe.device)
        if scale == 0:
            return None  # the base model, exactly
        plan.cond["controlnet_cond"] = hint  # (n, 3, H, W)
        plan.uncond["controlnet_cond"] = hint
        controlnet = self.controlnet.to(pipe.device)
        return lambda model, part: controlled(model, controlnet, scale)


def controlled(model: Model, controlnet: torch.nn.Module, conditioning_scale: float) -> Model:
    """The model callable with the ControlNet's residuals added (reads `controlnet_cond`)."""

    def steered(
        x: torch.Tensor, t: torch.Tensor, controlnet_cond: torch.Tensor, **cond
    ) -> torch.Tensor:
        net_inputs = {k: v for k, v in cond.items() if k in _NETWORK_INPUTS}
        down, mid = controlnet(
            x, t, controlnet_cond, conditioning_scale=conditioning_scale, **net_inputs
        )
        return model(
            x, t, **cond, down_block_additional_residuals=down, mid_block_additional_residual=mid
        )

    return steered


def control_tensor(image, n: int, size: tuple[int, int]) -> torch.Tensor:
    """(n, 3, H, W) float in [0, 1] from a PIL image, a list of them, or a [0, 1] tensor; a
    wrong size or count is a one-line error."""
    if isinstance(image, Image.Image):
        image = [image]
    if isinstance(image, (list, tuple)):
        if not all(isinstance(im, Image.Image) for im in image):
            raise HwaksanError("control_image must be PIL images or a tensor in [0, 1]")
        arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in image]
        sizes = {a.shape[:2] for a in arrays}
        if len(sizes) != 1:
            raise HwaksanError(f"the control images differ in size: {sorted(sizes)}")
        image = torch.from_numpy(np.stack(arrays)).movedim(-1, 1)  # (k, 3, H, W)
    if not isinstance(image, torch.Tensor):
        raise HwaksanError("control_image must be PIL images or a tensor in [0, 1]")
    x = image.float()[None] if image.dim() == 3 else image.float()
    if x.dim() != 4 or x.shape[1] != 3:
        raise HwaksanError(
            f"control_image must be (3, H, W) or (n, 3, H, W), not {tuple(image.shape)}"
        )
    if tuple(x.shape[-2:]) != size:
        raise HwaksanError(
            f"the control image is {x.shape[-1]}x{x.shape[-2]} px; this model makes "
            f"{size[1]}x{size[0]} px images, so its control image must be that size"
        )
    if x.shape[0] == 1:
        x = x.expand(n, -1, -1, -1)
    if x.shape[0] != n:
        raise HwaksanError(
            f"control_image must be one image or {n} (one per image), not {x.shape[0]}"
        )
    return x.contiguous()


def attach_controlnet(pipe, controlnet: torch.nn.Module) -> None:
    """Put the ControlNet part first among `pipe.parts` (replacing an attached one): its wrapper
    is then the innermost, so every guide sees the controlled network."""
    pipe.parts[:] = [p for p in pipe.parts if not isinstance(p, ControlNetPart)]
    pipe.parts.insert(0, ControlNetPart(controlnet))
