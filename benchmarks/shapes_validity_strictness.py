"""How strict `validity` is: the valid fraction of real renders after perturbations that early
models produce (washed-out colors, faint objects, blur, noise).

    python benchmarks/shapes_validity_strictness.py [--n 300]

Prints a markdown table (rows: perturbation, columns: resolution) with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import torch
import torch.nn.functional as F

from hwaksan.data import shapes
from hwaksan.eval.shapes_score import validity_coverage


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = torch.exp(-(torch.arange(-3, 4).float() ** 2) / (2 * sigma**2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    return F.conv2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), k.expand(3, 1, 7, 7), groups=3)


def perturbations(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Named perturbed copies of a batch in [-1, 1]."""
    u, g = (x + 1) / 2, torch.Generator().manual_seed(0)
    ink = (u.amax(1, keepdim=True) > 0.2).float()
    out = {"clean": x}
    for w in (0.15, 0.3, 0.5):
        out[f"washed {w:.0%} toward white"] = (u * (1 - w) + w * ink) * 2 - 1
    for a in (0.8, 0.6):
        out[f"intensity {a:.0%}"] = u * a * 2 - 1
    for s in (0.5, 1.0):
        out[f"blur sigma {s} px"] = _blur(u, s) * 2 - 1
    for s in (0.05, 0.1, 0.2):
        out[f"noise N(0, {s})"] = x + s * torch.randn(x.shape, generator=g)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="renders per resolution")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table: dict[str, dict[int, float]] = {}
    for resolution in (16, 32, 64):
        cfg = shapes.ShapesConfig(resolution=resolution)
        x, _ = shapes.render_batch(args.n, seed=31, config=cfg)
        for name, images in perturbations(x).items():
            table.setdefault(name, {})[resolution] = validity_coverage(images, cfg)["validity"]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = f"base shapes, 1-3 objects, {args.n} renders per resolution"
    print(f"validity of perturbed renders ({head}), {platform.machine()}, {stamp}")
    print("(washing leaves white objects as they are: the valid washed scenes are all-white ones)")
    print("| perturbation | 16 px | 32 px | 64 px |\n|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[r]:.1%}" for r in (16, 32, 64)) + " |")


if __name__ == "__main__":
    main()
