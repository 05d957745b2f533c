"""Training an IP-Adapter (Ye et al. 2023) on a frozen text-to-image model: the recipe's parts.

The diffusion recipe trains only the adapter (`Recipe.trainable`): the U-Net, text encoder and
image encoder stay frozen. Each example is a latent, its caption and a reference image's embedding
(the frozen mini-CLIP tower, computed once). As in the paper (sec. 4.1), the text, the image, or
both are dropped with probability `drop_prob` each, so classifier-free guidance works on either.

Two choices of the shapes world's data, each a switch:
- `reference` "moved" shows the same objects at new places (same shape, color and size), so the
  image carries what the objects are and not where they are; "same" is the paper's own pairing
  (the reference is the training image itself).
- `position_captions`: the share of examples with a kept image whose caption is cut, half of them
  to its position only ("in the top left"), half (and every two-object one) to the empty prompt,
  so that the image, not the text, must say the shape and color: a complete caption leaves the
  image tokens nothing to add (a pilot with every cut to the position: 100% with a position
  prompt after 155 steps, 43% with the empty prompt).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.ip_adapter import IP_TOKENS, IPAdapter, encode_image
from hwaksan.train.data import CaptionedImages
from hwaksan.train.text import Prompted, TextPrompts

REFERENCES = ("moved", "same")


class IPAdapterModel(nn.Module):
    """A frozen U-Net with an IP-Adapter attached: forward(x, t, context, context_mask,
    image_embeds) -> the U-Net's prediction, the image tokens passed as cross-attention kwargs."""

    def __init__(self, unet: nn.Module, adapter: IPAdapter) -> None:
        super().__init__()
        self.unet, self.adapter = unet, adapter
        adapter.attach(unet)

    def forward(self, x, t, context=None, context_mask=None, image_embeds=None) -> torch.Tensor:
        kwargs = None
        if image_embeds is not None:
            kwargs = {IP_TOKENS: self.adapter.image_tokens(image_embeds)}  # (B, T, D)
        return self.unet(
            x, t, context=context, context_mask=context_mask, cross_attention_kwargs=kwargs
        )  # (B, C, H, W)


class ReferencedImages(CaptionedImages):
    """Captioned latents with a reference image embedding per image (`image_embeds` [N, E]) and
    a position-only caption per image ("" for scenes of several objects)."""

    def __init__(self, images, pairs, image_embeds: torch.Tensor, position_captions: list[str]):
        super().__init__(images, pairs)
        self.image_embeds, self.position_captions = image_embeds, position_captions

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(i)
        index = item["index"]
        return {**item, "image_embeds": self.image_embeds[index],
                "position_caption": self.position_captions[index]}  # fmt: skip


class ImagePrompts(TextPrompts):
    """Prompts and image prompts: the model gets `context`, `context_mask` (the frozen text
    encoder) and `image_embeds` (B, E). `drop` draws once per example: text dropped with
    `drop_prob`, image with `drop_prob`, both with `drop_prob`; a kept image's caption is cut with
    `position_captions`, to its position or to "" (half each). Progress grids: `sample_embeds`
    with the empty prompt."""

    kind = "ip_adapter"

    def __init__(
        self, text_encoder: nn.Module, sample_embeds: torch.Tensor, *, drop_prob: float = 0.05,
        position_captions: float = 0.0, captions: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        if not 0 <= 3 * drop_prob <= 1:
            raise HwaksanError(f"drop_prob must be in [0, 1/3], not {drop_prob}")
        super().__init__(text_encoder, cond_drop_prob=drop_prob, captions=captions)
        self.drop_prob, self.position_captions = drop_prob, position_captions
        self.sample_embeds = sample_embeds

    def drop(self, batch: dict) -> dict:
        p, captions = self.drop_prob, list(batch["caption"])
        u = torch.rand(len(captions))  # [0, p): text, [p, 2p): image, [2p, 3p): both
        text_off = (u < p) | ((u >= 2 * p) & (u < 3 * p))
        image_off = (u >= p) & (u < 3 * p)
        cut = torch.rand(len(captions)) < self.position_captions
        to_position = torch.rand(len(captions)) < 0.5
        for i in range(len(captions)):
            if text_off[i] or (cut[i] and not image_off[i]):
                captions[i] = (
                    batch["position_caption"][i] if to_position[i] and not text_off[i] else ""
                )
        keep = (~image_off).to(batch["image_embeds"].dtype)[:, None]  # (B, 1)
        return {**batch, "caption": captions, "image_embeds": batch["image_embeds"] * keep}

    def cond(self, batch: dict, device: torch.device) -> dict:
        return {**self.conditions(batch["caption"], device),
                "image_embeds": batch["image_embeds"].to(device)}  # fmt: skip

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        """The sample references in turn with the empty prompt, guided against no image."""
        embeds = self.sample_embeds[torch.arange(n) % len(self.sample_embeds)].to(device)
        text = self.conditions([""] * n, device)
        cond = {**text, "image_embeds": embeds}
        uncond = {**text, "image_embeds": torch.zeros_like(embeds)}
        return Prompted(model, cond, uncond, self.sample_guidance_scale), None

    def check(self, model: nn.Module) -> None:
        if not isinstance(model, IPAdapterModel):
            raise HwaksanError("image prompts train an IPAdapterModel (a U-Net with an adapter)")

    def describe(self) -> dict:
        return {**super().describe(), "drop_prob": self.drop_prob,
                "position_captions": self.position_captions}  # fmt: skip


def reference_scenes(scenes: list, reference: str, seed: int) -> list:
    """The scene each reference image shows: the scene itself ("same") or its objects moved."""
    from hwaksan.data.shapes import moved

    if reference not in REFERENCES:
        raise HwaksanError(f"unknown reference {reference!r}; use {' or '.join(REFERENCES)}")
    if reference == "same":
        return list(scenes)
    return [moved(s, np.random.default_rng((seed, 7, i))) for i, s in enumerate(scenes)]


@torch.no_grad()
def reference_embeds(clip: nn.Module, scenes: list, batch_size: int = 500) -> torch.Tensor:
    """mini-CLIP image embeddings [N, E] of the scenes rendered at their resolution."""
    from hwaksan.data.shapes import render, to_tensor

    chunks = []
    for start in range(0, len(scenes), batch_size):
        images = to_tensor(np.stack([render(s) for s in scenes[start : start + batch_size]]))
        chunks.append(encode_image(clip, images).cpu())
    return torch.cat(chunks)  # (N, E)
