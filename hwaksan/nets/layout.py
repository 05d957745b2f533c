"""Layout-to-image's condition, the LDM way (Rombach et al. 2022, sec. 4.3.1 and appendix
D.3): each object one token, its label and its box quantized on a coarse grid, read by a small
transformer whose outputs the U-Net attends to by cross-attention, as it would a prompt's.

A layout is a list of ("red circle", (x0, y0, x1, y1)) with the box in [0, 1] image fractions
(x right, y down). Its tokens are [1 + max_objects, 5] ids (label, x0, y0, x1, y1); row 0 is a
null token every layout has (so an empty layout still has one token to attend to, and is the
unconditional input for classifier-free guidance).
"""

from __future__ import annotations

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
    grid: int = 16  # box corners quantized to grid x grid positions
    max_objects: int = 3
    width: int = 128  # the U-Net's context_dim
    layers: int = 2
    heads: int = 4


def quantize(v: float, grid: int) -> int:
    """A coordinate in [0, 1] as one of `grid` positions (0 and 1 are the ends)."""
    return int(round(min(max(v, 0.0), 1.0) * (grid - 1)))


def layout_tokens(layout: Layout, config: LayoutEncoderConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [1 + max_objects, 5] long, mask [1 + max_objects] bool) of one layout."""
    if len(layout) > config.max_objects:
        raise HwaksanError(f"a layout holds at most {config.max_objects} objects, "
                           f"got {len(layout)}")  # fmt: skip
    null = len(config.labels)  # the null token's label id
    tokens = torch.zeros(1 + config.max_objects, 5, dtype=torch.long)
    tokens[0] = torch.tensor([null, 0, 0, config.grid - 1, config.grid - 1])
    mask = torch.zeros(1 + config.max_objects, dtype=torch.bool)
    mask[0] = True
    for i, item in enumerate(layout, start=1):
        label, box = _checked(item, config.labels)
        tokens[i] = torch.tensor([config.labels.index(label),
                                  *(quantize(v, config.grid) for v in box)])  # fmt: skip
        mask[i] = True
    return tokens, mask


def layout_from_tokens(
    tokens: torch.Tensor, mask: torch.Tensor, config: LayoutEncoderConfig
) -> list[tuple[str, tuple[float, ...]]]:
    """The layout tokens stand for: each object's label and its box on the grid."""
    return [(config.labels[int(row[0])], tuple(int(q) / (config.grid - 1) for q in row[1:]))
            for row, real in zip(tokens[1:], mask[1:]) if real]  # fmt: skip


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
    one embedding per quantized corner coordinate, through a transformer encoder."""

    def __init__(self, config: LayoutEncoderConfig) -> None:
        super().__init__()
        self.config, w = config, config.width
        self.label_embedding = nn.Embedding(len(config.labels) + 1, w)  # + the null token
        self.coordinate_embeddings = nn.ModuleList(nn.Embedding(config.grid, w) for _ in range(4))
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
        h = self.label_embedding(tokens[..., 0])  # (B, M, W)
        for k, embedding in enumerate(self.coordinate_embeddings):
            h = h + embedding(tokens[..., 1 + k])
        h = self.norm(self.transformer(h, src_key_padding_mask=~mask))  # (B, M, W)
        return TextEncoding(h, mask, h[:, 0])

    def forward(self, layouts: Sequence[Layout]) -> TextEncoding:
        tokens, mask = self.tokenize(layouts)
        device = self.label_embedding.weight.device
        return self.encode(tokens.to(device), mask.to(device))
