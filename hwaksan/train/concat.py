"""Conditioners for concat-conditioned models (`nets.conditions`): super-resolution from a
noise-augmented low-res image (SR3, Saharia et al. 2021; LDM-SR, Rombach et al. 2022, sec. 4.4;
conditioning augmentation, Ho et al. 2022) and inpainting from random masks (Stable Diffusion's
inpainting U-Net), the latter around a text (or any) conditioner."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from hwaksan.errors import HwaksanError
from hwaksan.nets import conditions
from hwaksan.train.conditioners import Conditioner


class WithLowRes(Dataset):
    """A dataset's items with each one's low-res image: dict(..., low_res=[C, r, r])."""

    def __init__(self, dataset: Dataset, low_res: torch.Tensor) -> None:
        self.dataset, self.low_res = dataset, low_res

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "low_res": self.low_res[i]}


def _check_concat(model: nn.Module, want: int) -> None:
    got = getattr(getattr(model, "config", None), "concat_channels", None)
    if got != want:
        raise HwaksanError(f"this condition needs a U-Net with concat_channels={want}, not {got}")


class SuperResolution(Conditioner):
    """model(x_t, t, concat=low-res input, class_labels=noise level): each example's low-res
    image (batch["low_res"]) clean (level 0, what sampling uses by default) with probability
    `clean_prob`, else noised at a level drawn uniformly from the others."""

    kind = "super_resolution"

    def __init__(self, condition: dict, sample_side: int, channels: int, preview: torch.Tensor,
                 clean_prob: float = 0.5):  # fmt: skip
        self.condition, self.sample_side, self.clean_prob = condition, sample_side, clean_prob
        self.num_classes = condition["noise_levels"]  # the U-Net's class embedding: the level
        self.concat_channels = conditions.concat_channels(condition, channels, (0, sample_side))
        self.preview = preview  # [n, C, r, r] low-res images the progress grids upscale

    def drop(self, batch: dict) -> dict:
        low = batch["low_res"].to(batch["image"].device)  # (B, C, r, r)
        b, levels = low.shape[0], self.condition["noise_levels"]
        level = torch.randint(1, max(levels, 2), (b,), device=low.device) % levels
        level = torch.where(torch.rand(b, device=low.device) < self.clean_prob, 0, level)
        noisy = conditions.augment_low_res(low, level, self.condition, torch.randn_like(low))
        concat = conditions.low_res_concat(noisy, self.sample_side)
        return {**batch, "concat": concat, "noise_level": level}

    def cond(self, batch: dict, device: torch.device) -> dict:
        return {
            "concat": batch["concat"].to(device),
            "class_labels": batch["noise_level"].to(device),
        }

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        low = self.preview[:n].to(device)
        level = torch.full((len(low),), self.condition["noise_level"], device=device)
        low = conditions.augment_low_res(low, level, self.condition, torch.zeros_like(low))
        return model, {"concat": conditions.low_res_concat(low, self.sample_side),
                       "class_labels": level}  # fmt: skip

    def check(self, model: nn.Module) -> None:
        _check_concat(model, self.concat_channels)

    def describe(self) -> dict:
        return {"condition": self.condition, "clean_prob": self.clean_prob}


class RandomMasks(Conditioner):
    """Inpainting around another conditioner (prompts): model(x_t, t, **inner, concat=[mask,
    masked x0]). Each example's mask: one random box (a side from a quarter of the sample to all
    of it), the whole sample with probability `full_prob` (then plain generation)."""

    kind = "inpainting"

    def __init__(self, inner: Conditioner, sample_shape: tuple[int, int, int],
                 full_prob: float = 0.25) -> None:  # fmt: skip
        self.inner, self.full_prob, self.sample_shape = inner, full_prob, tuple(sample_shape)
        self.num_classes = inner.num_classes

    def drop(self, batch: dict) -> dict:
        batch = self.inner.drop(batch)
        x0 = batch["image"]  # (B, C, h, w)
        keep = 1 - random_box_masks(x0.shape[0], x0.shape[-1], self.full_prob, x0.device)
        return {**batch, "concat": conditions.inpainting_concat(x0, keep)}

    def cond(self, batch: dict, device: torch.device) -> dict:
        return {**self.inner.cond(batch, device), "concat": batch["concat"].to(device)}

    def sample_inputs(self, model: nn.Module, n: int, device) -> tuple[nn.Module, dict | None]:
        """The inner conditioner's grid with everything repainted (plain generation)."""
        zeros = torch.zeros(1, *self.sample_shape, device=device)
        keep = torch.zeros(1, 1, *self.sample_shape[1:], device=device)
        return self.inner.sample_inputs(_Concat(model, conditions.inpainting_concat(zeros, keep)),
                                        n, device)  # fmt: skip

    def check(self, model: nn.Module) -> None:
        self.inner.check(model)
        _check_concat(model, 1 + self.sample_shape[0])

    def describe(self) -> dict:
        return {**self.inner.describe(), "condition": conditions.inpainting()}


class _Concat(nn.Module):
    """The network with one `concat` input [1, c, h, w] bound for every row of every call."""

    def __init__(self, model: nn.Module, concat: torch.Tensor) -> None:
        super().__init__()
        self.model, self.concat = model, concat

    def forward(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        return self.model(x, t, concat=self.concat.expand(x.shape[0], -1, -1, -1), **cond)


def random_box_masks(n: int, side: int, full_prob: float, device=None) -> torch.Tensor:
    """[n, 1, side, side] masks (1: repaint): one box each, sides from side // 4 to side, or the
    whole image with probability `full_prob`."""
    low = max(1, side // 4)
    h = torch.randint(low, side + 1, (n,))
    w = torch.randint(low, side + 1, (n,))
    y0 = (torch.rand(n) * (side - h + 1)).long()
    x0 = (torch.rand(n) * (side - w + 1)).long()
    rows, cols = torch.arange(side)[None, :, None], torch.arange(side)[None, None, :]
    inside = (rows >= y0[:, None, None]) & (rows < (y0 + h)[:, None, None])
    inside = inside & (cols >= x0[:, None, None]) & (cols < (x0 + w)[:, None, None])
    full = (torch.rand(n) < full_prob)[:, None, None]
    return (inside | full).float()[:, None].to(device)  # (n, 1, side, side)
