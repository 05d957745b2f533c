"""`generate`'s image inputs (`image=`, `mask_image=`): PIL images, arrays or tensors, one for
all images or one per image, checked and turned into [n, C, H, W] tensors in [-1, 1] (diffusers'
`image` / `mask_image`: white in the mask is what is repainted, black is kept)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hwaksan.errors import HwaksanError


def image_batch(image: Any, n: int, shape: tuple[int, int, int], what: str = "image"):
    """[n, C, H, W] float in [-1, 1] from one image or n: PIL, a uint8 HxWxC array, or a
    [C, H, W] / [B, C, H, W] tensor in [-1, 1]; the size must be `shape`'s (no silent resizing)."""
    items = list(image) if isinstance(image, (list, tuple)) else [image]
    tensors = [_one(item, shape[0], what) for item in items]
    x = torch.cat(tensors)  # (b, C, H, W)
    if x.shape[0] == 1:
        x = x.expand(n, -1, -1, -1)
    if x.shape[0] != n:
        raise HwaksanError(f"{what} must be one image or {n} (one per image), got {x.shape[0]}")
    if tuple(x.shape[1:]) != tuple(shape):
        raise HwaksanError(f"{what} is {tuple(x.shape[1:])} (C, H, W); this model needs {shape}")
    return x.float().contiguous()


def mask_batch(mask: Any, n: int, size: tuple[int, int]) -> torch.Tensor:
    """[n, 1, H, W] in {0, 1} from `mask_image` (1, white: repaint; 0, black: keep), thresholded
    at half grey."""
    m = image_batch(mask, n, (_channels(mask), *size), "mask_image")  # (n, c, H, W)
    return (m.mean(dim=1, keepdim=True) > 0).float()  # (n, 1, H, W)


def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[n, 1, h, w]: a latent cell is repainted where any of its pixels is (max pooling)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.adaptive_max_pool2d(mask, size)


def _channels(image: Any) -> int:
    first = image[0] if isinstance(image, (list, tuple)) else image
    if isinstance(first, Image.Image):
        return 1 if first.mode in ("L", "1") else 3
    t = torch.as_tensor(np.asarray(first)) if not torch.is_tensor(first) else first
    if isinstance(first, np.ndarray):
        return 1 if t.ndim == 2 else t.shape[-1]
    return t.shape[-3] if t.ndim >= 3 else 1


def _one(item: Any, channels: int, what: str) -> torch.Tensor:
    """[b, C, H, W] in [-1, 1] from one PIL image, uint8 array or tensor."""
    if isinstance(item, Image.Image):
        item = np.asarray(item.convert("L" if channels == 1 else "RGB"))
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise HwaksanError(f"{what} as an array must be uint8 HxW or HxWxC, got {item.dtype}")
        t = torch.from_numpy(item.copy()).float() / 127.5 - 1
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    elif torch.is_tensor(item):
        t = item.detach().float().cpu()
    else:
        raise HwaksanError(f"{what} must be a PIL image, a uint8 array or a tensor, not {item!r}")
    while t.ndim < 4:  # [H, W] -> [1, H, W] -> [1, C, H, W]
        t = t[None]
    if t.ndim != 4 or not torch.isfinite(t).all():
        raise HwaksanError(f"{what} must be [C, H, W] or [B, C, H, W] with finite values")
    return t.clamp(-1, 1)
