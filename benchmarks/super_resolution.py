"""Super-resolution on held-out shapes scenes, beside bicubic upsampling in the same run.

PSNR (dB, images in [0, 1]) against the high-res original, and the detector's object agreement:
the share of images where `shapes.detect` reads the same objects (shape, color, 3x3 position) in
the upscaled image as in the original. The autoencoder's own round trip D(E(x)) is a third row:
a latent model cannot beat it.

    python benchmarks/super_resolution.py --model runs/sr16/model --n 200
    python benchmarks/super_resolution.py --model shapes_sr --cascade shapes_t2i

With `--cascade`, a 32 px text-to-image model's images for single-object prompts are upscaled
and both read by the detector: the prompt score before and after.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from report import write_report


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of [-1, 1] images, on the [0, 1] scale."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def objects(image: torch.Tensor) -> list[tuple[str, str, str]]:
    """What the detector reads: sorted (shape, color, position) of every object."""
    from hwaksan.data.shapes import detect

    return sorted((o.shape, o.color, o.position) for o in detect(image))


def agreement(images: torch.Tensor, originals: torch.Tensor) -> float:
    return sum(objects(a) == objects(b) for a, b in zip(images, originals)) / len(images)


def main() -> None:
    import hwaksan as hk
    from hwaksan.runs.super_resolution import low_res_images, shapes_scenes

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="shapes_sr")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--noise-level", type=int, default=None)
    p.add_argument("--seed", type=int, default=123)  # training scenes use seed 0
    p.add_argument("--name", default="super_resolution")
    p.add_argument("--cascade", default=None, help="a text-to-image model at the low resolution")
    p.add_argument("--cascade-noise-level", type=int, default=0)
    a = p.parse_args()
    pipe = hk.load(a.model, device="cpu")
    r = pipe.condition["low_res"]
    high = shapes_scenes(pipe.image_shape[-1], a.n, a.seed).dataset.images  # (n, 3, H, W)
    low = low_res_images(high, r)
    start = time.perf_counter()
    sr = pipe.generate(a.n, image=low, steps=a.steps, noise_level=a.noise_level,
                       output_type="pt", batch_size=50, progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    bicubic = F.interpolate(low, size=high.shape[-2:], mode="bicubic", align_corners=False)
    rows = {"model": {"images": sr}, "bicubic": {"images": bicubic.clamp(-1, 1)}}
    if pipe.autoencoder is not None:
        with torch.no_grad():
            rows["autoencoder round trip (ceiling)"] = {"images": pipe.decode(pipe.encode(high))}
    table = [f"# Super-resolution {r} -> {high.shape[-1]} px ({a.model}, {a.n} held-out scenes, "
             f"seed {a.seed}, {pipe.steps if a.steps is None else a.steps} steps, "
             f"{seconds / a.n:.3f} s/image)", "",
             "| method | PSNR (dB) | same objects (detector) |", "|---|---|---|"]  # fmt: skip
    out = []
    for name, row in rows.items():
        value, agree = psnr(row["images"], high).mean().item(), agreement(row["images"], high)
        table.append(f"| {name} | {value:.2f} | {agree:.1%} |")
        out.append({"method": name, "psnr": value, "same_objects": agree})
    cascade = _cascade(pipe, a) if a.cascade else None
    if cascade:
        table += [
            "",
            f"Cascade: {a.cascade} at {cascade['low_res']} px, then this model "
            f"(noise level {cascade['noise_level']}): prompt score {cascade['low']:.0%} "
            f"-> {cascade['high']:.0%} ({a.n} single-object prompts, guidance 4).",
        ]
    write_report(a.name, table, {"model": a.model, "n": a.n, "rows": out, "cascade": cascade})


def _cascade(pipe, a) -> dict:
    """A text-to-image model's images at the low resolution, upscaled: the prompt score before
    and after (both read by the detector at their own size)."""
    from prompt_score import single_prompts

    import hwaksan as hk
    from hwaksan.eval.shapes_score import prompt_score

    t2i = hk.load(a.cascade, device="cpu")
    prompts = single_prompts(a.n, t2i.image_shape[-1])
    low = t2i.generate(a.n, prompt=prompts, guidance_scale=4.0, output_type="pt", seed=1)
    level = a.cascade_noise_level
    high = pipe.generate(a.n, image=low, noise_level=level, steps=a.steps, output_type="pt")
    return {
        "low_res": low.shape[-1],
        "noise_level": level,
        "low": prompt_score(prompts, low)["all"],
        "high": prompt_score(prompts, high)["all"],
    }


if __name__ == "__main__":
    main()
