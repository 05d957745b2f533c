"""Draw the README's picture of the shapes world: an 8x8 grid of 32 px scenes, upscaled x4.

python benchmarks/shapes_grid.py [--out docs/shapes_grid.png] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from hwaksan.data import shapes


def grid(images: np.ndarray, nrow: int, scale: int, gap: int = 4) -> Image.Image:
    """uint8 [N, H, W, 3] -> one PIL image, tiles upscaled (nearest) and separated by gray."""
    n, h, w, _ = images.shape
    ncol = -(-n // nrow)
    big = images.repeat(scale, 1).repeat(scale, 2)
    H, W = h * scale, w * scale
    canvas = np.full((nrow * (H + gap) + gap, ncol * (W + gap) + gap, 3), 64, np.uint8)
    for k in range(n):
        r, c = divmod(k, ncol)
        canvas[gap + r * (H + gap) :][:H, gap + c * (W + gap) :][:, :W] = big[k]
    return Image.fromarray(canvas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/shapes_grid.png")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = shapes.ShapesConfig(resolution=32, shapes=shapes.ALL_SHAPES)
    _, scenes = shapes.render_batch(64, seed=args.seed, config=cfg)
    grid(np.stack([shapes.render(s) for s in scenes]), nrow=8, scale=4).save(args.out)
    for s in scenes[:8]:
        print(s.caption)


if __name__ == "__main__":
    main()
