"""The detector's accuracy on fresh renders, per configuration (resolution x objects x shape set),
clean and with mild noise N(0, 0.05) in [-1, 1] units.

    python benchmarks/shapes_detector_accuracy.py [--n 2000]

An image counts as right when the detected (shape, color, size, position) multiset equals the
ground truth's. Prints a markdown table with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import torch
from tqdm import tqdm

from hwaksan.data import shapes

SETS = {"base": shapes.BASE_SHAPES, "held-out": shapes.NEW_SHAPES, "all": shapes.ALL_SHAPES}


def _truth(objects) -> list:
    return sorted((o.shape, o.color, o.size, o.position) for o in objects)


def accuracy(resolution: int, n_objects: int, shape_set: str, n: int, noise: float) -> float:
    cfg = shapes.ShapesConfig(resolution, n_objects, n_objects, shapes=SETS[shape_set])
    x, scenes = shapes.render_batch(n, seed=12, config=cfg)
    if noise:
        x = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(12))
    hits = sum(_truth(shapes.detect(im)) == _truth(s.objects) for im, s in zip(x, scenes))
    return hits / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images per configuration")
    args = ap.parse_args()
    torch.set_num_threads(1)
    configs = [(r, k, s) for s in SETS for r in (16, 32, 64) for k in (1, 2, 3)]
    rows = []
    for r, k, s in tqdm(configs, desc="configurations"):
        rows.append((r, k, s, accuracy(r, k, s, args.n, 0.0), accuracy(r, k, s, args.n, 0.05)))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"detector accuracy, {args.n} renders per row, {platform.machine()}, {stamp}")
    print("| shapes | resolution | objects | clean | noise 0.05 |\n|---|---|---|---|---|")
    for r, k, s, clean, noisy in rows:
        print(f"| {s} | {r} | {k} | {clean:.2%} | {noisy:.2%} |")


if __name__ == "__main__":
    main()
