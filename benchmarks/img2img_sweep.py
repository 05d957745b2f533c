"""Image-to-image (SDEdit) strength sweep on a text-to-image model: two curves, similarity to the
input and the target prompt's score, as strength goes from 0 (the input) to 1 (a new image).

Inputs: single-object 64 px scenes (seeds the training stream never draws); the target prompt
asks for the same shape at the same place in another color ("a red circle in the top left" ->
"a blue circle in the top left"). Similarity: PSNR to the input, and the share where the detector
still reads the input's shape at its position. Score: `prompt_score` of the target ("all").
Beside it, strength 1 with DDIM inversion on the input's own caption (reconstruction).

    python benchmarks/img2img_sweep.py --model shapes_t2i_64 --n 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prompt_score import _phrase, _where  # noqa: E402
from report import RESULTS, write_report  # noqa: E402
from super_resolution import psnr  # noqa: E402

SEED = 778_001
STRENGTHS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def scenes(n: int, resolution: int):
    """n single-object scenes: images [n, 3, R, R], their objects."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=resolution, min_objects=1, max_objects=1)
    images, scenes = shapes.render_batch(n, seed=SEED, config=config)
    return images, [s.objects[0] for s in scenes]


def recolor(o) -> str:
    """The target prompt: the object's shape and place, the next color."""
    from dataclasses import replace

    from hwaksan.data.shapes import ShapesConfig

    colors = list(ShapesConfig().colors)
    return f"{_phrase(replace(o, color=colors[(colors.index(o.color) + 1) % len(colors)]))} " \
           f"{_where(o)}"  # fmt: skip


def kept(images, objects) -> float:
    """The share of images where the detector reads the input's shape at the input's place."""
    from hwaksan.data.shapes import detect

    hits = [any(d.shape == o.shape and d.position == o.position for d in detect(im))
            for im, o in zip(images, objects)]  # fmt: skip
    return sum(hits) / len(hits)


def main() -> None:
    import hwaksan as hk
    from hwaksan.eval.shapes_score import prompt_score

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="shapes_t2i_64")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance-scale", type=float, default=4.0)
    a = p.parse_args()
    pipe = hk.load(a.model, device="cpu")
    images, objects = scenes(a.n, pipe.image_shape[-1])
    targets = [recolor(o) for o in objects]
    common = dict(steps=a.steps, guidance_scale=a.guidance_scale, output_type="pt", seed=0)
    rows, start = [], time.perf_counter()
    for s in STRENGTHS:
        out = pipe.generate(a.n, prompt=targets, image=images, strength=s, **common)
        score = prompt_score(targets, out)["all"]
        rows.append({"strength": s, "psnr": psnr(out, images).mean().item(),
                     "kept": kept(out, objects), "target_score": score})  # fmt: skip
        print(rows[-1], flush=True)
    own = [f"{_phrase(o)} {_where(o)}" for o in objects]
    inversion = {}
    for scale in (1.0, a.guidance_scale):  # without guidance, the DDIM ODE inverted is the one run
        inv = pipe.generate(a.n, prompt=own, image=images, strength=1.0, invert=True,
                            **{**common, "guidance_scale": scale})  # fmt: skip
        inversion[f"{scale:g}"] = {"psnr": psnr(inv, images).mean().item()}
    table = [f"# img2img strength sweep ({a.model}, {a.n} single-object scenes recolored, "
             f"DDIM-{a.steps}, guidance {a.guidance_scale:g}; "
             f"{time.perf_counter() - start:.0f} s)", "",
             "| strength | PSNR to input (dB) | input's shape kept in place | target score |",
             "|---|---|---|---|"]  # fmt: skip
    table += [f"| {r['strength']:g} | {r['psnr']:.1f} | {r['kept']:.0%} | "
              f"{r['target_score']:.0%} |" for r in rows]  # fmt: skip
    table += [
        "",
        "DDIM inversion at strength 1 on the input's own caption, PSNR to the input: "
        + ", ".join(f"{v['psnr']:.1f} dB at guidance {k}" for k, v in inversion.items())
        + f" (the autoencoder round trip alone: strength 0's {rows[0]['psnr']:.1f} dB).",
    ]
    write_report("img2img_sweep", table, {"rows": rows, "inversion": inversion})
    plot(rows, RESULTS / "img2img_sweep.png")


def plot(rows, path) -> None:
    """The two curves against strength."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [r["strength"] for r in rows]
    fig, left = plt.subplots(figsize=(5, 3.2))
    left.plot(s, [r["psnr"] for r in rows], "o-", color="tab:blue")
    left.set_xlabel("strength")
    left.set_ylabel("PSNR to the input (dB)", color="tab:blue")
    right = left.twinx()
    right.plot(s, [r["target_score"] for r in rows], "s-", color="tab:red")
    right.set_ylabel("target prompt score", color="tab:red")
    right.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
