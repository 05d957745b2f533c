"""The watermark look: a small white square stamped near the bottom-right corner of every image,
over whatever is there. The base text-to-image models never saw it (their world has no such
option on), so a LoRA that learns it shows what an adapter adds; `has_watermark` measures it.

Why a mark and not a new background: the shipped KL autoencoder decodes any background but black
to black (a navy, purple or teal one comes back as (0, 0, 0)), and dim textures fade below the
detector's ink threshold; a bright mark of 3 x 3 pixels (at 64 px) survives its encode / decode.
"""

from __future__ import annotations

import numpy as np

MARK_WHITENESS = 0.5  # smallest mean of min(R, G, B) over the mark's pixels that reads as a mark


def watermark_box(resolution: int) -> tuple[slice, slice]:
    """(rows, cols) of the mark: 3 px wide, 2 px from the corner at 64 px; scaled with the size."""
    size, inset = max(1, round(3 * resolution / 64)), max(1, round(2 * resolution / 64))
    span = slice(resolution - inset - size, resolution - inset)
    return span, span


def stamp_watermark(images: np.ndarray) -> np.ndarray:
    """uint8 images [..., H, W, 3] with the white mark stamped on (in place; also returned)."""
    rows, cols = watermark_box(images.shape[-2])
    images[..., rows, cols, :] = 255
    return images


def has_watermark(image) -> bool:
    """True when the mark is there: its pixels white on average (min over RGB >= 0.5), which no
    saturated palette color is. Image: PIL, uint8 [H, W, 3] or [3, H, W] tensor in [-1, 1]."""
    from hwaksan.data.shapes.detector import as_array

    x = as_array(image)  # (H, W, 3) in [0, 1]
    rows, cols = watermark_box(x.shape[0])
    return float(x[rows, cols].min(-1).mean()) >= MARK_WHITENESS


def watermark_rate(images) -> float:
    """The fraction of a batch [N, 3, H, W] (or a list of images) that carries the mark."""
    images = list(images)
    return sum(has_watermark(im) for im in images) / max(len(images), 1)
