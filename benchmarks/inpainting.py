"""Inpainting read by the detector, each method beside the others in one run.

Insertion: a one-object 64 px scene, a mask box (24 px) around the center of a grid cell, 2 px
clear of the object, the prompt the two-object caption the model learned ("a blue square to the
right of a red circle"): a hit when the detector reads the new shape and color with its centroid
inside the mask, and the old object is still read.
Removal: a two-object scene, the mask the second object's box grown by 3 px, the empty prompt: a
hit when the detector reads only the first object (background where the second was); again with
the prompt describing what should remain, the first object's caption ("remove: caption"). Outside
the mask the pixels are the input's exactly (checked on every image).

    python benchmarks/inpainting.py --model shapes_t2i_64 --n 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_report  # noqa: E402

SEED = 779_001
CELLS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom",
         "bottom right")  # fmt: skip
HALF = 12  # the insertion mask: 24 px square


def _render(n: int, objects: int, resolution: int):
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=resolution, min_objects=objects, max_objects=objects)
    images, scenes = shapes.render_batch(n, seed=SEED + objects, config=config)
    return images, scenes


def _center(cell: str, resolution: int) -> tuple[int, int]:
    row, col = CELLS.index(cell) // 3, CELLS.index(cell) % 3
    return int((row + 0.5) * resolution / 3), int((col + 0.5) * resolution / 3)


def _clear(cell: str, box, resolution: int) -> bool:
    """Whether the cell's mask box keeps 2 px clear of the object's box."""
    cy, cx = _center(cell, resolution)
    x0, y0, x1, y1 = box
    return x1 + 2 < cx - HALF or x0 - 2 > cx + HALF or y1 + 2 < cy - HALF or y0 - 2 > cy + HALF


def insertion_tasks(n: int, resolution: int):
    """(images, masks, prompts, wants): one new object in an empty cell per scene."""
    from hwaksan.data.shapes import ShapesConfig
    from hwaksan.data.shapes.captions import RELATION_WORDS, SHAPE_WORDS
    from hwaksan.data.shapes.world import relation_word

    images, scenes = _render(n, 1, resolution)
    config, g = ShapesConfig(), torch.Generator().manual_seed(SEED)
    masks, prompts, wants = torch.zeros(n, 1, resolution, resolution), [], []
    for i, scene in enumerate(scenes):
        free = [c for c in CELLS if _clear(c, scene.objects[0].box, resolution)]
        free = free or [c for c in CELLS if c != scene.objects[0].position]
        cell = free[int(torch.randint(len(free), (1,), generator=g))]
        cy, cx = _center(cell, resolution)
        masks[i, :, max(cy - HALF, 0) : cy + HALF, max(cx - HALF, 0) : cx + HALF] = 1
        shape = config.shapes[int(torch.randint(len(config.shapes), (1,), generator=g))]
        color = config.colors[int(torch.randint(len(config.colors), (1,), generator=g))]
        old = scene.objects[0]
        relation = RELATION_WORDS[relation_word((cx, cy), old.centroid)][0]
        prompts.append(f"a {color} {SHAPE_WORDS[shape][0]} {relation} "
                       f"a {old.color} {SHAPE_WORDS[old.shape][0]}")  # fmt: skip
        wants.append((shape, color, old))
    return images, masks, prompts, wants, None


def removal_tasks(n: int, resolution: int):
    """(images, masks, prompts, keeps): the second object of each two-object scene masked."""
    images, scenes = _render(n, 2, resolution)
    masks = torch.zeros(n, 1, resolution, resolution)
    for i, scene in enumerate(scenes):
        x0, y0, x1, y1 = scene.objects[1].box
        masks[i, :, max(int(y0) - 3, 0) : int(y1) + 4, max(int(x0) - 3, 0) : int(x1) + 4] = 1
    from hwaksan.data.shapes.captions import SHAPE_WORDS

    remain = [f"a {s.objects[0].color} {SHAPE_WORDS[s.objects[0].shape][0]}" for s in scenes]
    return images, masks, [""] * n, [s.objects[0] for s in scenes], remain


def _inside(d, mask) -> bool:
    x, y = d.centroid
    return bool(mask[0, min(int(y), mask.shape[-2] - 1), min(int(x), mask.shape[-1] - 1)] > 0)


def insertion_rate(out, masks, wants) -> float:
    from hwaksan.data.shapes import detect

    hits = 0
    for image, mask, (shape, color, old) in zip(out, masks, wants):
        found = detect(image)
        new = any(d.shape == shape and d.color == color and _inside(d, mask) for d in found)
        kept = any(d.shape == old.shape and d.color == old.color for d in found)
        hits += new and kept
    return hits / len(out)


def removal_rate(out, keeps) -> float:
    from hwaksan.data.shapes import detect

    hits = 0
    for image, keep in zip(out, keeps):
        found = [(d.shape, d.color) for d in detect(image)]
        hits += found == [(keep.shape, keep.color)]
    return hits / len(out)


def main() -> None:
    import hwaksan as hk

    p = argparse.ArgumentParser()
    p.add_argument("--model", action="append", default=None, help="repeatable")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance-scale", type=float, default=4.0)
    p.add_argument("--grids", default=None, help="a folder for each method's images")
    a = p.parse_args()
    methods = []  # (name, model, extra generate inputs)
    for name in a.model or ["shapes_t2i_64"]:
        pipe = hk.load(name, device="cpu")
        if (pipe.condition or {}).get("kind") == "inpainting":
            methods.append((f"{name} (dedicated)", pipe, {}))
        else:
            methods.append((f"{name} + RePaint, no resampling", pipe, dict(jump_n_sample=1)))
            methods.append((f"{name} + RePaint, jump 5 x 2", pipe,
                            dict(jump_length=5, jump_n_sample=2)))  # fmt: skip
    res = methods[0][1].image_shape[-1]
    removal = removal_tasks(a.n, res)
    tasks = {"insert": insertion_tasks(a.n, res), "remove": (*removal[:4], None),
             "remove: caption": (*removal[:2], removal[4], removal[3], None)}  # fmt: skip
    rows = []
    for name, pipe, extra in methods:
        row, start = {"method": name}, time.perf_counter()
        for task, (images, masks, prompts, wants, _) in tasks.items():
            out = pipe.generate(a.n, prompt=prompts, image=images, mask_image=masks,
                                steps=a.steps, guidance_scale=a.guidance_scale,
                                output_type="pt", **extra)  # fmt: skip
            keep = (masks == 0).expand_as(images)
            assert torch.equal(out[keep], images[keep]), "a pixel outside the mask changed"
            if a.grids:
                from hwaksan.images import save_grid

                slug = name.split(" ")[0] + ("_jumps" if extra.get("jump_length") else "")
                path = f"{a.grids}/{task.replace(': ', '_')}_{slug}.png"
                save_grid(torch.cat([images[:8], out[:8]]), path, 8, 2)
            rate = insertion_rate if task == "insert" else removal_rate
            row[task] = rate(out, masks, wants) if task == "insert" else rate(out, wants)
        row["seconds_per_image"] = (time.perf_counter() - start) / (len(tasks) * a.n)
        rows.append(row)
        print(row, flush=True)
    table = [f"# Inpainting ({a.n} scenes per task, DDIM-{a.steps}, guidance "
             f"{a.guidance_scale:g}; pixels outside the mask equal the input's in every image)",
             "", "| method | prompted object inside the mask | object removed (empty prompt) "
             "| removed (prompt: what remains) | s / image |",
             "|---|---|---|---|---|"]  # fmt: skip
    table += [f"| {r['method']} | {r['insert']:.0%} | {r['remove']:.0%} | "
              f"{r['remove: caption']:.0%} | {r['seconds_per_image']:.2f} |"
              for r in rows]  # fmt: skip
    write_report("inpainting", table, rows)


if __name__ == "__main__":
    main()
