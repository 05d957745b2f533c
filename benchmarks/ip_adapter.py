"""IP-Adapter on shapes_t2i_64: does a reference image prompt the model, and how does `scale`
trade the image against the text?

References are single-object 64 px scenes from seeds no training run draws. Two tasks, read back
by the analytic detector (hwaksan/data/shapes/detector.py):
- image only: the empty prompt and the reference; a hit when an object of the reference's shape
  and color is found ("only" also asks that it is the one object found);
- image + position: a prompt that names only a position ("in the top left", never the reference's
  own), and the reference; a hit when an object has the reference's shape and color *and* sits
  where the prompt says.
Every scale from 0 (the base model: the adapter's processors run the default path) to 1 is
measured in the same run, on the same references and seeds; a plot shows the trade-off.

    python benchmarks/ip_adapter.py --adapter hwaksan/weights/shapes_t2i_64_ip_adapter [--n 105]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

REFERENCE_SEED = 881_001  # reference scenes no training stream (seeds 0, 1) draws


def references(n: int, resolution: int = 64) -> tuple[torch.Tensor, list]:
    """n single-object scenes [n, 3, R, R] in [-1, 1] and their objects."""
    from hwaksan.data.shapes import ShapesConfig, render_batch

    config = ShapesConfig(resolution=resolution, min_objects=1, max_objects=1)
    images, scenes = render_batch(n, seed=REFERENCE_SEED, config=config)
    return images, [s.objects[0] for s in scenes]


def other_positions(objects: list) -> list[str]:
    """For reference i, a grid position other than its own (cycling through the other 8)."""
    from hwaksan.data.shapes import POSITIONS

    own = [POSITIONS.index(o.position) for o in objects]
    return [POSITIONS[(p + 1 + i % 8) % 9] for i, p in enumerate(own)]


def score(images: torch.Tensor, objects: list, positions: list[str] | None) -> dict:
    """Hit rates of one task: the reference's shape and color (anywhere, and as the only object),
    the prompt's position (any object there), and both on one object."""
    from hwaksan.data.shapes import detect

    hits = {"content": 0, "content_only": 0, "position": 0, "both": 0}
    for i, (image, o) in enumerate(zip(images, objects)):
        found = detect(image)
        same = [d for d in found if d.shape == o.shape and d.color == o.color]
        hits["content"] += bool(same)
        hits["content_only"] += len(found) == 1 and bool(same)
        if positions is not None:
            hits["position"] += any(d.position == positions[i] for d in found)
            hits["both"] += any(d.position == positions[i] for d in same)
    return {k: v / len(objects) for k, v in hits.items()}


def measure(pipe, refs, objects, scale: float, args) -> dict:
    """Both tasks at one scale."""
    from hwaksan.data.shapes.captions import position_phrase

    pipe.set_ip_adapter_scale(scale)
    common = dict(
        sampler="ddim", steps=args.steps, seed=args.seed, output_type="pt", progress=False,
        guidance_scale=args.guidance_scale, ip_adapter_image=refs,
    )  # fmt: skip
    empty = pipe.generate(len(refs), prompt="", **common)
    positions = other_positions(objects)
    prompts = [position_phrase(p) for p in positions]
    placed = pipe.generate(len(refs), prompt=prompts, **common)
    return {"scale": scale, "image_only": score(empty, objects, None),
            "image_position": score(placed, objects, positions),
            "grids": (empty[:16], placed[:16])}  # fmt: skip


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [r["scale"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(s, [r["image_only"]["content"] for r in rows], "o-",
            label="empty prompt: image's shape + color")  # fmt: skip
    ax.plot(s, [r["image_position"]["both"] for r in rows], "s-",
            label="position prompt: image's shape + color at the prompt's position")  # fmt: skip
    ax.plot(s, [r["image_position"]["position"] for r in rows], "^--",
            label="position prompt: the prompt's position")  # fmt: skip
    ax.plot(s, [r["image_position"]["content"] for r in rows], "v--",
            label="position prompt: the image's shape + color")  # fmt: skip
    ax.set(xlabel="ip_adapter scale", ylabel="share of samples", ylim=(0, 1.02),
           title="IP-Adapter on shapes_t2i_64: image vs text")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes_t2i_64")
    parser.add_argument("--adapter", default="hwaksan/weights/shapes_t2i_64_ip_adapter")
    parser.add_argument("--n", type=int, default=63, help="references (single objects)")
    parser.add_argument("--scales", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance-scale", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="ip_adapter")
    args = parser.parse_args()
    report(args)


def report(args) -> None:
    from report import RESULTS, write_report

    import hwaksan as hk
    from hwaksan.images import save_grid

    start = time.perf_counter()
    pipe = hk.load(args.model)
    pipe.load_ip_adapter(args.adapter)
    refs, objects = references(args.n)
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        row = measure(pipe, refs, objects, scale, args)
        empty, placed = row.pop("grids")
        RESULTS.mkdir(exist_ok=True)
        save_grid(torch.cat([refs[:16], empty, placed]), RESULTS / f"{args.name}_s{scale:g}.png",
                  nrow=16, scale=2)  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    plot(rows, RESULTS / f"{args.name}.png")
    lines = [
        f"# IP-Adapter on {args.model}: image prompt vs scale",
        "",
        f"`python benchmarks/ip_adapter.py --adapter {args.adapter} --n {args.n}` "
        f"({args.n} single-object references, seed {REFERENCE_SEED}; DDIM {args.steps} steps, "
        f"guidance {args.guidance_scale:g}; scale 0 is the base model)",
        "",
        "| scale | empty prompt: shape+color | ... as the only object | position prompt: "
        "shape+color at the position | position right | shape+color right |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["image_only"], r["image_position"]
        lines.append(f"| {r['scale']:g} | {a['content']:.1%} | {a['content_only']:.1%} | "
                     f"{b['both']:.1%} | {b['position']:.1%} | {b['content']:.1%} |")  # fmt: skip
    minutes = (time.perf_counter() - start) / 60
    lines += ["", f"Plot: `{args.name}.png`; grids (row 1: references, 2: empty prompt, 3: "
              f"position prompt): `{args.name}_s<scale>.png`. {minutes:.1f} min on "
              f"{platform.processor() or platform.machine()}, "
              f"{datetime.now(timezone.utc):%Y-%m-%d}."]  # fmt: skip
    write_report(args.name, lines, rows)


if __name__ == "__main__":
    main()
