"""Layout-to-image read by the detector: for held-out shapes layouts of 1-3 boxes, the share of
boxes where an object of the right label (color and shape) is found with IoU >= 0.7, and the
mean best IoU. Beside it, on the same scenes of 1-2 objects, the text-to-image model
(`--baseline`, `shapes_t2i_64`) told the scene in words, the prompt score's phrasing ("a red
circle in the top left"; two objects: "a red circle to the left of a blue square"), without and
with layout guidance on the relation.

    python benchmarks/layout_to_image.py --model runs/layout/model --n 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_report  # noqa: E402

from hwaksan.eval.control_score import box_iou  # noqa: E402

SEED = 780_001


def score(images, layouts, resolution: int) -> dict:
    """Per box: the best IoU among detections of its label, and whether it reaches 0.7."""
    from hwaksan.data.shapes import detect

    ious = []
    for image, layout in zip(images, layouts):
        found = detect(image)
        for label, box in layout:
            pixels = [v * resolution for v in box]
            same = [box_iou(pixels, d.box) for d in found if f"{d.color} {d.shape}" == label]
            ious.append(max(same, default=0.0))
    return summary(ious)


def summary(ious: list[float]) -> dict:
    """A row of the table: how many boxes, their mean IoU, the share at IoU >= 0.7."""
    return {"boxes": len(ious), "mean_iou": sum(ious) / len(ious),
            "iou_0.7_and_label": sum(v >= 0.7 for v in ious) / len(ious)}  # fmt: skip


def token_ceiling(layouts, config) -> dict:
    """How well a perfect model could do: each true box against the box its layout token holds
    (corners quantized to the encoder's grid, or exact), IoU and the share at >= 0.7."""
    from hwaksan.nets.layout import layout_from_tokens, layout_tokens

    ious = []
    for layout in layouts:
        held = layout_from_tokens(*layout_tokens(layout, config), config)
        ious += [box_iou(box, kept) for (_, box), (_, kept) in zip(layout, held)]
    return summary(ious)


def scene_prompt(scene) -> str:
    """The text-to-image model's prompt for a scene of 1-2 objects: the prompt score's phrasing."""
    from prompt_score import _phrase, _where

    from hwaksan.data.shapes.captions import RELATION_WORDS

    a = scene.objects[0]
    if len(scene.objects) == 1:
        return f"{_phrase(a)} {_where(a)}"
    relation = RELATION_WORDS[scene.relation(0, 1)][0]
    return f"{_phrase(a)} {relation} {_phrase(scene.objects[1])}"


def main() -> None:
    import hwaksan as hk
    from hwaksan.data import shapes
    from hwaksan.train.layout import scene_layout

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="shapes_layout")
    p.add_argument("--baseline", default="shapes_t2i_64", help="'none': no baseline")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--guidance-scale", type=float, default=3.0)
    p.add_argument("--baseline-guidance", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--report", default="layout_to_image", help="benchmarks/results/REPORT.md")
    a = p.parse_args()
    pipe = hk.load(a.model, device="cpu")
    r = pipe.image_shape[-1]
    config = shapes.ShapesConfig(resolution=r, min_objects=1, max_objects=3)
    images, scenes = shapes.render_batch(a.n, seed=SEED, config=config)
    layouts = [scene_layout(s) for s in scenes]
    out = pipe.generate(a.n, layout=layouts, guidance_scale=a.guidance_scale, steps=a.steps,
                        output_type="pt")  # fmt: skip
    few = [i for i, s in enumerate(scenes) if len(s.objects) <= 2]
    tokens = pipe.layout_encoder.config  # how layout tokens are made
    held = f"{tokens.grid} positions" if tokens.boxes == "grid" else "exact corners"
    sub = [layouts[i] for i in few]
    rows = {
        f"{a.model}, 1-3 boxes": score(out, layouts, r),
        "the scenes themselves, 1-3 boxes": score(images, layouts, r),
        f"the boxes the tokens hold ({held})": token_ceiling(layouts, tokens),
        f"{a.model}, 1-2 boxes": score(out[few], sub, r),
    }
    if a.baseline != "none":
        t2i = hk.load(a.baseline, device="cpu")
        from prompt_score import layout_relations

        prompts = [scene_prompt(scenes[i]) for i in few]
        relations = layout_relations(prompts)
        for layout_scale in (0.0, 1.0):
            name = f"{a.baseline}, prompt" + (" + layout guidance 1" if layout_scale else "")
            images_t2i = t2i.generate(
                len(few), prompt=prompts, guidance_scale=a.baseline_guidance,
                steps=a.steps, seed=0, output_type="pt", layout_scale=layout_scale,
                relations=relations if layout_scale else None,
            )  # fmt: skip
            rows[f"{name}, 1-2 boxes"] = score(images_t2i, sub, r)
    table = [f"# Layout-to-image ({a.model}, {a.n} held-out layouts of 1-3 boxes, {len(few)} of "
             f"them 1-2 boxes; guidance {a.guidance_scale:g}, baseline guidance "
             f"{a.baseline_guidance:g}, DDIM-{a.steps})", "",
             "| images | boxes | mean IoU | IoU >= 0.7, label right |",
             "|---|---|---|---|"]  # fmt: skip
    table += [f"| {k} | {v['boxes']} | {v['mean_iou']:.2f} | {v['iou_0.7_and_label']:.0%} |"
              for k, v in rows.items()]  # fmt: skip
    write_report(a.report, table, rows)


if __name__ == "__main__":
    main()
