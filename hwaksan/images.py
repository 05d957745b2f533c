"""Images at the edge: [-1, 1] tensors to PIL images and PNG grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] in [-1, 1] -> [B, H, W, C] uint8 (rounded, clamped)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[B, C, H, W] in [-1, 1] (C = 1 or 3) -> a list of PIL images ("L" or "RGB")."""
    arrays = to_uint8(images).numpy()
    if arrays.shape[-1] == 1:
        return [Image.fromarray(a[..., 0], mode="L") for a in arrays]
    return [Image.fromarray(a, mode="RGB") for a in arrays]


def make_grid(
    images: torch.Tensor, nrow: int | None = None, pad: int = 1, scale: int = 1
) -> Image.Image:
    """Tile [B, C, H, W] images in [-1, 1] into one PIL image, `nrow` per row, upscaled `scale`x."""
    b, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    tiles = to_uint8(images)  # (B, H, W, C)
    canvas = torch.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 40, dtype=torch.uint8)
    for i in range(b):
        y, x = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        canvas[y : y + h, x : x + w] = tiles[i]
    arr = canvas.numpy()
    img = Image.fromarray(arr[..., 0], "L") if c == 1 else Image.fromarray(arr, "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_grid(
    images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, nrow, scale=scale).save(path)
    return path
