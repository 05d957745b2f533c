"""A LoRA that teaches a frozen text-to-image model a look its base never saw: how often the look
appears against the LoRA's scale, and what it costs the prompt score.

The look is the shapes world's watermark (`hwaksan.data.shapes.watermark`: a white 3 x 3 mark near
the bottom-right corner, read back by `has_watermark`). Single-object prompts from fresh scenes
("a red circle in the top left"), one image each at every `lora_scale`, against the base model in
the same run (its images, and scale 0's, must be the same tensors).

    python benchmarks/lora_look.py --lora hwaksan/weights/shapes_t2i_64_watermark_lora
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


def generate(pipe, prompts: list[str], args, **inputs) -> torch.Tensor:
    """One image per prompt (seed 0), [-1, 1]."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        return pipe.generate(len(prompts), steps=args.steps, seed=0, prompt=prompts,
                             guidance_scale=args.guidance_scale, output_type="pt",
                             **inputs).float()  # fmt: skip


def measure(prompts: list[str], images: torch.Tensor) -> dict:
    """The look's rate and the prompt score's claims on these images."""
    from hwaksan.data.shapes.watermark import watermark_rate
    from hwaksan.eval.shapes_score import prompt_score

    scores = prompt_score(prompts, images)
    return {"look": watermark_rate(images), **{k: scores[k] for k in ("object", "position", "all")}}


def _plot(rows: list[dict], base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = [r["scale"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(scales, [100 * r["look"] for r in rows], "o-", label="watermark look")
    ax.plot(scales, [100 * r["all"] for r in rows], "s--", label="prompt score (all claims)")
    ax.axhline(100 * base["look"], color="gray", lw=0.8, ls=":", label="base: look")
    ax.set(xlabel="lora_scale", ylabel="% of samples", ylim=(-3, 103))
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    from prompt_score import single_prompts

    from hwaksan.model_folder import load
    from hwaksan.nets.adapters import lora_parameters

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes_t2i_64")
    ap.add_argument("--lora", default="hwaksan/weights/shapes_t2i_64_watermark_lora")
    ap.add_argument("--n", type=int, default=200, help="single-object prompts")
    ap.add_argument("--scales", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--guidance-scale", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--name", default="lora_look", help="results/<name>.md, .json, .png")
    ap.add_argument("--grid", default="docs/lora_look.png", help="8 prompts, a row per scale")
    args = ap.parse_args()
    start = time.perf_counter()
    pipe = load(args.model, device="cpu")
    prompts = single_prompts(args.n, pipe.image_shape[-1])
    base_images = generate(pipe, prompts, args)
    base = {"scale": "base", **measure(prompts, base_images)}
    unet_params = sum(p.numel() for p in pipe.unet.parameters())
    pipe.load_lora_weights(args.lora, adapter_name="look")
    lora_params = sum(p.numel() for p in lora_parameters(pipe.unet).parameters())
    rows, grid = [], [base_images[:8]]
    for scale in [float(s) for s in args.scales.split(",")]:
        images = generate(pipe, prompts, args, lora_scale=scale)
        grid.append(images[:8])
        rows.append({"scale": scale, **measure(prompts, images),
                     "same_as_base": bool(torch.equal(images, base_images))})  # fmt: skip
        print(rows[-1], flush=True)
    from report import RESULTS, write_report

    _plot(rows, base, RESULTS / f"{args.name}.png")
    from hwaksan.images import save_grid

    save_grid(torch.cat(grid), args.grid, nrow=8, scale=2)
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    lines = [
        f"# LoRA look: {args.n} single-object prompts, one image each, DDIM-{args.steps}, "
        f"guidance {args.guidance_scale:g}, seed 0" + (", bf16 autocast" if args.bf16 else ""),
        "",
        f"{platform.machine()}, torch {torch.__version__}, "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, "
        f"{time.perf_counter() - start:.0f} s. `python benchmarks/lora_look.py "
        + " ".join(sys.argv[1:]) + "`",
        "",
        f"LoRA {args.lora}: {lora_params:,} parameters = {100 * lora_params / unet_params:.2f}% "
        f"of the U-Net's {unet_params:,}. Look: the watermark (`has_watermark`). Plot: "
        f"`{args.name}.png`; grid `{args.grid}` (rows: base, then each scale; first 8 prompts).",
        "",
        "| lora_scale | look | object | position | all claims | images = base's |",
        "|---|---|---|---|---|---|",
        f"| base (no LoRA) | {pct(base['look'])} | {pct(base['object'])} | "
        f"{pct(base['position'])} | {pct(base['all'])} | - |",
        *[f"| {r['scale']:g} | {pct(r['look'])} | {pct(r['object'])} | {pct(r['position'])} | "
          f"{pct(r['all'])} | {'yes' if r['same_as_base'] else 'no'} |" for r in rows],
    ]  # fmt: skip
    write_report(args.name, lines, {"base": base, "rows": rows, "lora_params": lora_params,
                                    "unet_params": unet_params})  # fmt: skip


if __name__ == "__main__":
    main()
