"""Token grounding loss: each object word's cross-attention should fall on that object's pixels.

TokenCompose (Wang et al. 2024, eq. 3, L_token): for a caption token that names an object, the
share of its cross-attention inside the object's mask, A_in / A_all, is pushed to 1 by
(1 - A_in / A_all)^2, averaged over tokens and cross-attention layers, and added to the diffusion
loss with a small weight. The shapes world knows every object's mask and the caption parser which
words name which object, so the supervision is exact. It is meant to make the U-Net bind colors to
shapes and attend where it draws, which is also what layout guidance reads.
`TokenGroundingLoss` adds it to the diffusion recipe as a loss term.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.guidance.attention_maps import CrossAttentionMaps
from hwaksan.guidance.layout import phrase_positions
from hwaksan.train.terms import LossTerm


@dataclass
class ObjectMasks:
    """Per image: each object's coverage of a coarse grid, and what it is (color, shape)."""

    masks: torch.Tensor  # [N, K, h, w] float in [0, 1]; absent objects are all zero
    objects: list[list[tuple[str, str]]]  # per image, (color, shape) of object k


def shapes_object_masks(scenes, cell: int = 4) -> ObjectMasks:
    """`ObjectMasks` of shapes-world scenes on a grid of cell x cell pixels (area fractions)."""
    from hwaksan.data.shapes.renderer import segmentation_mask

    K = max(len(s.objects) for s in scenes)
    seg = torch.from_numpy(np.stack([segmentation_mask(s) for s in scenes]))  # (N, R, R)
    one_hot = torch.stack([seg == k + 1 for k in range(K)], 1).float()  # (N, K, R, R)
    masks = F.avg_pool2d(one_hot, cell) if cell > 1 else one_hot
    objects = [[(o.color, o.shape) for o in s.objects] for s in scenes]
    return ObjectMasks(masks.half(), objects)


class TokenGrounding:
    """Builds, per batch, which caption tokens name which objects, and the loss on the maps."""

    def __init__(
        self,
        object_masks: ObjectMasks,
        tokenize: Callable,
        mentions: Callable[[str], list[tuple[str, str | None, str]]],
    ) -> None:
        self.object_masks, self.tokenize, self.mentions = object_masks, tokenize, mentions
        self._cache: dict[tuple[str, int], list[tuple[tuple[int, ...], int]]] = {}

    def _tokens(self, caption: str, image: int) -> list[tuple[tuple[int, ...], int]]:
        """(token positions, object bitmask) for each mention of `caption` in image `image`."""
        key = (caption, image)
        if key not in self._cache:
            found = []
            mentions = self.mentions(caption) if caption else []
            try:
                spans = phrase_positions(self.tokenize, caption, [m[0] for m in mentions])
            except HwaksanError:  # a mention cut off by the encoder's length: skip the caption
                spans = []
            for span, (_, color, shape) in zip(spans, mentions):
                bits = sum(1 << k for k, (c, s) in enumerate(self.object_masks.objects[image])
                           if s == shape and color in (None, c))  # fmt: skip
                if bits:
                    found.append((span, bits))
            self._cache[key] = found
        return self._cache[key]

    def targets(
        self, captions: Sequence[str], images: torch.Tensor, length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """token_objects [B, M, K] (1 where token m names object k) and masks [B, K, h, w]."""
        masks = self.object_masks.masks[images.cpu()].float()  # (B, K, h, w)
        B, K = masks.shape[:2]
        token_objects = torch.zeros(B, length, K)
        for b, (caption, image) in enumerate(zip(captions, images.tolist())):
            for span, bits in self._tokens(caption, image):
                for k in range(K):
                    if bits >> k & 1:
                        token_objects[b, [p for p in span if p < length], k] = 1.0
        return token_objects, masks


def inside_share(
    probs: torch.Tensor, hw: tuple[int, int], token_objects: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """A_in / A_all per token [B, M]: the share of one layer's attention (probs [B, H*W, M]) that
    falls inside the objects each token names (token_objects [B, M, K]; masks [B, K, h, w] pooled
    to the layer's (H, W))."""
    pooled = F.adaptive_avg_pool2d(masks.to(probs), hw).flatten(2)  # (B, K, HW)
    target = (token_objects.to(probs) @ pooled).clamp(max=1)  # (B, M, HW)
    attn = probs.transpose(1, 2)  # (B, M, HW)
    return (attn * target).sum(-1) / attn.sum(-1).clamp_min(1e-12)  # (B, M)


def grounding_loss(
    maps: list[tuple[torch.Tensor, tuple[int, int]]],
    token_objects: torch.Tensor,
    masks: torch.Tensor,
) -> torch.Tensor:
    """mean over layers and grounded tokens of (1 - A_in / A_all)^2 (TokenCompose's L_token).

    maps: (probs [B, H*W, M], (H, W)) per cross-attention layer; token_objects [B, M, K];
    masks [B, K, h, w] object coverage, pooled to each layer's (H, W). 0 when nothing is grounded.
    """
    valid = token_objects.sum(-1) > 0  # (B, M)
    if not maps or not bool(valid.any()):
        return maps[0][0].new_zeros(()) if maps else torch.zeros(())
    total = 0.0
    for probs, hw in maps:
        inside = inside_share(probs, hw, token_objects, masks)  # (B, M)
        total = total + ((1 - inside) ** 2)[valid].mean()
    return total / len(maps)


class TokenGroundingLoss(LossTerm):
    """The token grounding loss as a diffusion recipe's term: `weight` * L_token on the maps
    `CrossAttentionMaps` records during the main forward; batches carry each caption's image
    "index" (and the captions as the model saw them, dropped ones "")."""

    def __init__(self, object_masks: ObjectMasks | None, tokenize: Callable, weight: float):
        if object_masks is None:
            raise HwaksanError("the token grounding loss needs object masks: use --data shapes")
        from hwaksan.data.shapes.caption_parser import mention_phrases

        self.grounding = TokenGrounding(object_masks, tokenize, mention_phrases)
        self.weight = weight

    def recording(self, model: nn.Module) -> CrossAttentionMaps:
        return CrossAttentionMaps(model)

    def __call__(
        self, model: nn.Module, batch: dict, cond: dict, recorded: CrossAttentionMaps
    ) -> tuple[torch.Tensor, dict[str, float]]:
        length = recorded.maps[0][0].shape[-1]
        token_objects, masks = self.grounding.targets(batch["caption"], batch["index"], length)
        device = batch["image"].device
        grounding = grounding_loss(recorded.maps, token_objects.to(device), masks.to(device))
        return self.weight * grounding, {"grounding": grounding.detach().item()}

    def describe(self) -> dict:
        return {"grounding_weight": self.weight}
