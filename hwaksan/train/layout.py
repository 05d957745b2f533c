"""Layout-to-image training (Rombach et al. 2022, sec. 4.3.1): shapes scenes with their boxes,
each object a token (`nets.layout`), the layout encoder trained with the U-Net by the
diffusion loss (as LDM trains its layout transformer). Layouts are dropped to the empty one
with `cond_drop_prob`, for classifier-free guidance."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from hwaksan.nets.layout import LayoutEncoder, LayoutEncoderConfig, layout_tokens
from hwaksan.train.conditioners import Conditioner


def shapes_labels() -> tuple[str, ...]:
    """Every "color shape" label of the base shapes world ("red circle", ...)."""
    from hwaksan.data.shapes import ShapesConfig

    config = ShapesConfig()
    return tuple(f"{color} {shape}" for color in config.colors for shape in config.shapes)


def scene_layout(scene) -> list[tuple[str, tuple[float, float, float, float]]]:
    """A shapes scene's layout: each object's "color shape" and its box as image fractions."""
    r = scene.resolution
    return [(f"{o.color} {o.shape}", tuple(min(max(v / r, 0.0), 1.0) for v in o.box))
            for o in scene.objects]  # fmt: skip


class WithLayouts(Dataset):
    """A dataset's items with each one's layout tokens: dict(..., layout_tokens, layout_mask)."""

    def __init__(self, dataset: Dataset, scenes, config: LayoutEncoderConfig) -> None:
        pairs = [layout_tokens(scene_layout(s), config) for s in scenes]
        self.dataset = dataset
        self.tokens = torch.stack([p[0] for p in pairs])  # (N, M, 5)
        self.mask = torch.stack([p[1] for p in pairs])  # (N, M)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "layout_tokens": self.tokens[i], "layout_mask": self.mask[i]}


class LayoutConditioned(nn.Module):
    """The U-Net and its layout encoder as one module (one optimizer, EMA, checkpoint):
    forward(x, t, layout_tokens, layout_mask)."""

    def __init__(self, unet: nn.Module, layout_encoder: LayoutEncoder) -> None:
        super().__init__()
        self.unet, self.layout_encoder = unet, layout_encoder

    def forward(self, x, t, layout_tokens: torch.Tensor, layout_mask: torch.Tensor):
        encoding = self.layout_encoder.encode(layout_tokens, layout_mask)
        return self.unet(x, t, context=encoding.hidden_states, context_mask=encoding.attention_mask)


class SceneLayouts(Conditioner):
    """batch["layout_tokens"] / ["layout_mask"] to a `LayoutConditioned` model; each dropped to
    the empty layout (the null token alone) with `cond_drop_prob`."""

    kind = "layout_diffusion"

    def __init__(self, preview: tuple[torch.Tensor, torch.Tensor], cond_drop_prob: float = 0.1):
        self.preview, self.cond_drop_prob = preview, cond_drop_prob  # grids' (tokens, mask)

    def drop(self, batch: dict) -> dict:
        mask = batch["layout_mask"]  # (B, M)
        drop = torch.rand(mask.shape[0], device=mask.device) < self.cond_drop_prob
        kept = mask & ~drop[:, None]
        kept[:, 0] = True  # the null token stays
        return {**batch, "layout_mask": kept}

    def cond(self, batch: dict, device: torch.device) -> dict:
        return {"layout_tokens": batch["layout_tokens"].to(device),
                "layout_mask": batch["layout_mask"].to(device)}  # fmt: skip

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        tokens, mask = self.preview
        rows = torch.arange(n) % len(tokens)  # the preview layouts in turn
        return model, {"layout_tokens": tokens[rows].to(device),
                       "layout_mask": mask[rows].to(device)}  # fmt: skip

    def describe(self) -> dict:
        return {"cond_drop_prob": self.cond_drop_prob}
