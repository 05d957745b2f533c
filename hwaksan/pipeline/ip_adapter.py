"""The IP-Adapter part of `generate`: `ip_adapter_image` becomes image tokens for the U-Net's
decoupled cross-attention (Ye et al. 2023), carried in `cross_attention_kwargs`.

The image runs through the frozen image encoder and the adapter's projection once per call. Its
unconditional twin is the projection of a zero embedding (diffusers' negative image embedding,
what image dropout trained), so classifier-free guidance steers toward the image prompt too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.ip_adapter import IP_TOKENS, IPAdapter, encode_image
from hwaksan.pipeline.parts import Part, Plan


class IPAdapterImage(Part):
    """`ip_adapter_image`: one image for all, or one per image (PIL images, or a [3, H, W] /
    [n, 3, H, W] tensor in [-1, 1]), read by `adapter` through `image_encoder` (mini-CLIP)."""

    inputs = ("ip_adapter_image",)

    def __init__(self, adapter: IPAdapter, image_encoder: torch.nn.Module) -> None:
        self.adapter, self.image_encoder = adapter, image_encoder

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> None:
        image = inputs.get("ip_adapter_image")
        if image is None:
            return
        images = image_batch(image, plan.n)  # (n, 3, H, W)
        embeds = encode_image(self.image_encoder, images).to(pipe.device)  # (n, E)
        tokens = self.adapter.image_tokens(embeds)  # (n, T, D)
        no_image = self.adapter.image_tokens(torch.zeros_like(embeds))  # (n, T, D)
        for cond, value in ((plan.cond, tokens), (plan.uncond, no_image)):
            cond["cross_attention_kwargs"] = {**cond.get("cross_attention_kwargs", {}),
                                              IP_TOKENS: value}  # fmt: skip


def image_batch(image, n: int) -> torch.Tensor:
    """`ip_adapter_image` as n RGB images (n, 3, H, W) in [-1, 1]; else one line."""
    if isinstance(image, (list, tuple)) and len(image) == 1:
        image = image[0]
    if isinstance(image, Image.Image):
        return _from_pil(image).expand(n, -1, -1, -1)
    if isinstance(image, (list, tuple)) and all(isinstance(i, Image.Image) for i in image):
        images = [_from_pil(i)[0] for i in image]
        if len(images) != n or len({tuple(i.shape) for i in images}) != 1:
            raise HwaksanError(
                f"ip_adapter_image must be one image or {n} images of one size (one per image)"
            )
        return torch.stack(images)
    if isinstance(image, torch.Tensor) and image.dim() in (3, 4) and image.shape[-3] == 3:
        images = image.float()[None] if image.dim() == 3 else image.float()
        if len(images) not in (1, n) or not bool(images.isfinite().all()):
            raise HwaksanError(f"ip_adapter_image must be 1 or {n} finite images [3, H, W]")
        return images.expand(n, -1, -1, -1)
    raise HwaksanError(
        "ip_adapter_image must be a PIL image, a list of them, or a [3, H, W] / [n, 3, H, W] "
        f"tensor in [-1, 1], not {type(image).__name__}"
    )


def _from_pil(image: Image.Image) -> torch.Tensor:
    """A PIL image as (1, 3, H, W) in [-1, 1] (grayscale or RGBA become RGB)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1)[None] / 127.5 - 1.0
