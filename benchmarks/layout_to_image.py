"""Layout-to-image read by the detector: for held-out shapes layouts of 1-3 boxes, the share of
boxes where an object of the right label (color and shape) is found with IoU >= 0.7, and the
mean best IoU.

    python benchmarks/layout_to_image.py --model runs/layout/model --n 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_report  # noqa: E402

SEED = 780_001


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def score(images, layouts, resolution: int) -> dict:
    """Per box: the best IoU among detections of its label, and whether it reaches 0.7."""
    from hwaksan.data.shapes import detect

    ious = []
    for image, layout in zip(images, layouts):
        found = detect(image)
        for label, box in layout:
            pixels = [v * resolution for v in box]
            same = [iou(pixels, d.box) for d in found if f"{d.color} {d.shape}" == label]
            ious.append(max(same, default=0.0))
    return {"boxes": len(ious), "mean_iou": sum(ious) / len(ious),
            "iou_0.7_and_label": sum(v >= 0.7 for v in ious) / len(ious)}  # fmt: skip


def main() -> None:
    import hwaksan as hk
    from hwaksan.data import shapes
    from hwaksan.train.layout import scene_layout

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="shapes_layout")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--guidance-scale", type=float, default=3.0)
    a = p.parse_args()
    pipe = hk.load(a.model, device="cpu")
    r = pipe.image_shape[-1]
    config = shapes.ShapesConfig(resolution=r, min_objects=1, max_objects=3)
    images, scenes = shapes.render_batch(a.n, seed=SEED, config=config)
    layouts = [scene_layout(s) for s in scenes]
    out = pipe.generate(a.n, layout=layouts, guidance_scale=a.guidance_scale, output_type="pt")
    rows = {"model": score(out, layouts, r), "the scenes themselves": score(images, layouts, r)}
    table = [f"# Layout-to-image ({a.model}, {a.n} held-out layouts of 1-3 boxes, guidance "
             f"{a.guidance_scale:g})", "",
             "| images | boxes | mean IoU | IoU >= 0.7, label right |",
             "|---|---|---|---|"]  # fmt: skip
    table += [f"| {k} | {v['boxes']} | {v['mean_iou']:.2f} | {v['iou_0.7_and_label']:.0%} |"
              for k, v in rows.items()]  # fmt: skip
    write_report("layout_to_image", table, rows)


if __name__ == "__main__":
    main()
