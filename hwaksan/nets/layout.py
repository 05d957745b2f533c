"""Layout-to-image's condition, the LDM way (Rombach et al. 2022, sec. 4.3.1 and appendix
D.3): each object one token, its label plus its box, read by a small transformer whose outputs
the U-Net attends to by cross-attention, as it would a prompt's.

The box enters a token one of two ways (`LayoutEncoderConfig.boxes`):
- "grid" (LDM): each corner coordinate quantized to `grid` positions, one learned embedding each.
- "fourier" (GLIGEN, Li et al. 2023, eq. 3): the exact corners as sines and cosines of
  `frequencies` octaves through an MLP, so nearby boxes get nearby embeddings and no position
  needs its own training examples.

A layout is a list of ("red circle", (x0, y0, x1, y1)) with the box in [0, 1] image fractions
(x right, y down). Its tokens are [1 + max_objects, 5] floats (label id, x0, y0, x1, y1); row 0 is
a null token every layout has (so an empty layout still has one token to attend to, and is the
unconditional input for classifier-free guidance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.text.base import TextEncoding

Layout = Sequence[tuple[str, tuple[float, float, float, float]]]


@dataclass
class LayoutEncoderConfig(JSONConfig):
    labels: tuple[str, ...] = ()  # the object labels it knows ("red circle", ...)
    boxes: str = "grid"  # how a box enters its token: "grid" or "fourier"
    grid: int = 16  # "grid": box corners quantized to grid x grid positions
    frequencies: int = 8  # "fourier": octaves 2^0 pi ... 2^(F-1) pi per coordinate
    max_objects: int = 3
    width: int = 128  # the U-Net's context_dim
    layers: int = 2
    heads: int = 4


def quantize(v: torch.Tensor, grid: int) -> torch.Tensor:
    """Coordinates in [0, 1] as positions 0 .. grid - 1 (0 and 1 are the ends)."""
    return torch.round(v.clamp(0.0, 1.0) * (grid - 1)).long()


def layout_tokens(layout: Layout, config: LayoutEncoderConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [1 + max_objects, 5] float, mask [1 + max_objects] bool) of one layout."""
    if len(layout) > config.max_objects:
        raise HwaksanError(f"a layout holds at most {config.max_objects} objects, "
                           f"got {len(layout)}")  # fmt: skip
    null = len(config.labels)  # the null token's label id
    tokens = torch.zeros(1 + config.max_objects, 5)
    tokens[0] = torch.tensor([null, 0.0, 0.0, 1.0, 1.0])
    mask = torch.zeros(1 + config.max_objects, dtype=torch.bool)
    mask[0] = True
    for i, item in enumerate(layout, start=1):
        label, box = _checked(item, config.labels)
        tokens[i] = torch.tensor([config.labels.index(label), *box])
        mask[i] = True
    return tokens, mask


def layout_from_tokens(
    tokens: torch.Tensor, mask: torch.Tensor, config: LayoutEncoderConfig
) -> list[tuple[str, tuple[float, ...]]]:
    """The layout the encoder sees in these tokens: each object's label and its box (on the grid,
    for "grid" boxes)."""
    boxes = tokens[:, 1:]
    if config.boxes == "grid":
        boxes = quantize(boxes, config.grid) / (config.grid - 1)
    return [(config.labels[int(row[0])], tuple(float(v) for v in box))
            for row, box, real in zip(tokens[1:], boxes[1:], mask[1:]) if real]  # fmt: skip


def fourier_features(v: torch.Tensor, frequencies: int) -> torch.Tensor:
    """[..., K] coordinates -> [..., K * 2F]: sin and cos of 2^f pi v for f < F (GLIGEN, NeRF)."""
    bands = math.pi * 2.0 ** torch.arange(frequencies, device=v.device, dtype=v.dtype)
    angles = (v[..., None] * bands).flatten(-2)  # (..., K * F)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def _checked(item, labels: Sequence[str]) -> tuple[str, tuple[float, ...]]:
    try:
        label, box = item
        box = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise HwaksanError(f"a layout object is (label, (x0, y0, x1, y1)), not {item!r}") from None
    if label not in labels:
        raise HwaksanError(f"unknown layout label {label!r}; known: {', '.join(labels)}")
    if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise HwaksanError(f"a box is (x0, y0, x1, y1) in [0, 1] with x0 < x1, y0 < y1: {box}")
    return label, box


class LayoutEncoder(nn.Module):
    """Layout tokens -> `TextEncoding` (one hidden state per object): the label's embedding plus
    the box's (grid embeddings or Fourier features through an MLP), through a transformer."""

    def __init__(self, config: LayoutEncoderConfig) -> None:
        super().__init__()
        if config.boxes not in ("grid", "fourier"):
            raise HwaksanError(f"layout boxes are 'grid' or 'fourier', not {config.boxes!r}")
        self.config, w = config, config.width
        self.label_embedding = nn.Embedding(len(config.labels) + 1, w)  # + the null token
        if config.boxes == "grid":
            self.coordinate_embeddings = nn.ModuleList(
                nn.Embedding(config.grid, w) for _ in range(4)
            )
        else:
            features = 4 * 2 * config.frequencies
            self.box_mlp = nn.Sequential(nn.Linear(features, w), nn.SiLU(), nn.Linear(w, w),
                                         nn.LayerNorm(w))  # fmt: skip
            # Start at the grid's scale (four unit-variance rows summed: twice the label's norm);
            # a plain MLP starts 8x under the label's and the box is then barely read.
            nn.init.constant_(self.box_mlp[-1].weight, 2.0)
        layer = nn.TransformerEncoderLayer(w, config.heads, 4 * w, dropout=0.0,
                                           batch_first=True, norm_first=True)  # fmt: skip
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)

    @classmethod
    def from_config(cls, d: dict) -> LayoutEncoder:
        return cls(LayoutEncoderConfig.from_dict(d))

    @property
    def hidden_size(self) -> int:
        return self.config.width

    def tokenize(self, layouts: Sequence[Layout]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens [B, M, 5], mask [B, M]) of B layouts."""
        pairs = [layout_tokens(layout, self.config) for layout in layouts]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> TextEncoding:
        """Hidden states [B, M, width] of tokens [B, M, 5], mask [B, M]."""
        h = self.label_embedding(tokens[..., 0].long()) + self.box_embedding(tokens[..., 1:])
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask))  # (B, M, W)
        return TextEncoding(h, mask, h[:, 0])

    def box_embedding(self, boxes: torch.Tensor) -> torch.Tensor:
        """[B, M, 4] corners in [0, 1] -> [B, M, width]."""
        if self.config.boxes == "fourier":
            weight = self.box_mlp[0].weight
            return self.box_mlp(fourier_features(boxes.to(weight.dtype), self.config.frequencies))
        positions = quantize(boxes, self.config.grid)
        return sum(e(positions[..., k]) for k, e in enumerate(self.coordinate_embeddings))

    def forward(self, layouts: Sequence[Layout]) -> TextEncoding:
        tokens, mask = self.tokenize(layouts)
        device = self.label_embedding.weight.device
        return self.encode(tokens.to(device), mask.to(device))
