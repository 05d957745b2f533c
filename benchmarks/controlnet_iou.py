"""Does a ControlNet make the frozen text-to-image model follow a control map, while the prompt
still decides the colors? (Zhang et al. 2023; the issue's bar: IoU >= 0.8 in >= 90% of samples,
color claims >= 90%.)

Fresh scenes (a seed no training stream draws) of the base's own world: each gives a control
image (its silhouettes or its edges) and a prompt (its caption). The ControlNet-steered model and
the base alone (same seeds, same prompts) generate one image per scene; the shapes detector reads
them back: the IoU of the detected objects with the scene's object mask
(`hwaksan.eval.control_score`), and the prompt score's color claims (`eval.shapes_score`).
With `--snapshots` (a training run's `snapshots/` folder) every snapshot is scored too, and IoU is
plotted against training steps: ControlNet's "sudden convergence" (lllyasviel/ControlNet#215).

    python benchmarks/controlnet_iou.py --controlnet runs/controlnet_seg --control segmentation
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCENE_SEED = 777_017  # scenes no training stream (seeds 0, 1, 2) draws


def eval_scenes(pipe, n: int, control: str):
    """n fresh scenes of the base's world: prompts, control images (PIL) and object masks."""
    from PIL import Image

    from hwaksan.data.shapes import ShapesConfig, control_image, render, segmentation_mask
    from hwaksan.data.shapes.renderer import scene_rng
    from hwaksan.data.shapes.scene import sample_scene

    config = ShapesConfig.from_dict(pipe.data["shapes_config"])
    scenes = [sample_scene(scene_rng(SCENE_SEED, i), config) for i in range(n)]
    controls = [Image.fromarray(control_image(s, control, render(s))) for s in scenes]
    masks = [segmentation_mask(s) > 0 for s in scenes]
    return [s.caption for s in scenes], controls, masks


def score(pipe, prompts, controls, masks, args, use_controlnet: bool, keep=None) -> dict:
    """Generate one image per prompt (with or without the ControlNet) and read them back; the
    images are appended to `keep` (a list) when given."""
    from hwaksan.eval.control_score import IOU_THRESHOLD, control_iou
    from hwaksan.eval.shapes_score import prompt_score

    extra = {"control_image": controls} if use_controlnet else {}
    images = pipe.generate(
        len(prompts), steps=args.steps, seed=args.seed, prompt=prompts,
        guidance_scale=args.guidance_scale, output_type="pt", progress=False,
        batch_size=args.batch_size, **extra,
    )  # fmt: skip
    if keep is not None:
        keep.append(images)
    ious = np.array(control_iou(images, masks))
    claims = prompt_score(prompts, images)
    return {
        "iou_rate": float((ious >= IOU_THRESHOLD).mean()),
        "iou_mean": float(ious.mean()),
        "color": claims["color"],
        "shape": claims["shape"],
        "all": claims["all"],
        "n": len(prompts),
    }


def detach_controlnet(pipe) -> None:
    """The same pipeline with its ControlNet part removed: the base alone."""
    from hwaksan.pipeline.controlnet import ControlNetPart

    pipe.parts[:] = [p for p in pipe.parts if not isinstance(p, ControlNetPart)]


def snapshot_curve(pipe, snapshots: Path, prompts, controls, masks, args) -> list[dict]:
    """Score every snapshot folder (step_000250, ...) of a run, in step order."""
    from hwaksan.nets.adapters.folder import read_adapter

    rows = []
    for folder in sorted(snapshots.glob("step_*")):
        pipe.load_controlnet(folder)
        step = int(read_adapter(folder)[0].get("step", folder.name.split("_")[-1]))
        row = {"step": step, **score(pipe, prompts, controls, masks, args, True)}
        print(f"step {step}: IoU>=0.8 {row['iou_rate']:.0%}, mean IoU {row['iou_mean']:.3f}, "
              f"color {row['color']:.0%}", flush=True)  # fmt: skip
        rows.append(row)
    return rows


def converged(rows: list[dict], rate: float = 0.9) -> str:
    """Where the curve first reaches `rate` of samples at IoU >= 0.8, and where it left 0."""
    moved = next((r["step"] for r in rows if r["iou_rate"] > 0), None)
    reached = next((r["step"] for r in rows if r["iou_rate"] >= rate), None)
    return (
        f"First snapshot with any sample at IoU >= 0.8: step {moved}; first with >= "
        f"{rate:.0%} of samples: step {reached} (None: not within the run)."
    )


def save_comparison(controls, images, path: Path, prompts, k: int = 8) -> None:
    """The first k scenes: control images, the ControlNet's images, the base's (rows); the
    prompts beside, in a .txt."""
    from hwaksan.images import save_grid

    to_pm1 = [
        torch.from_numpy(np.array(c, np.float32) / 127.5 - 1).permute(2, 0, 1) for c in controls[:k]
    ]
    rows = torch.cat([torch.stack(to_pm1), images[0][:k], images[1][:k]])  # (3k, 3, H, W)
    save_grid(rows, path, nrow=k, scale=2)
    path.with_suffix(".txt").write_text("\n".join(prompts[:k]) + "\n")


def plot_curve(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, [r["iou_rate"] for r in rows], "o-", label="samples with IoU >= 0.8")
    ax.plot(steps, [r["iou_mean"] for r in rows], "s--", label="mean IoU")
    ax.plot(steps, [r["color"] for r in rows], "^:", label="color claims held")
    ax.set_xlabel("training step")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(name: str, rows: list[dict], key: str) -> list[str]:
    columns = "samples with IoU >= 0.8 | mean IoU | color claims | shape claims | all claims"
    lines = [f"| {key} | {columns} |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[key]} | {r['iou_rate']:.0%} | {r['iou_mean']:.3f} | {r['color']:.0%} "
                     f"| {r['shape']:.0%} | {r['all']:.0%} |")  # fmt: skip
    return lines


def main() -> None:
    from report import RESULTS, write_report

    import hwaksan as hk

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="shapes_t2i_64")
    ap.add_argument("--controlnet", help="the ControlNet adapter folder to score")
    ap.add_argument("--control", choices=["segmentation", "edges"], default="segmentation")
    ap.add_argument("--snapshots", help="a run's snapshots/ folder: IoU against training steps")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--curve-n", type=int, default=48, help="scenes per snapshot")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance-scale", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    name = args.name or f"controlnet_iou_{args.control}"
    start = time.time()
    torch.manual_seed(0)
    pipe = hk.load(args.base, device="cpu")
    lines = [f"# ControlNet on {args.base}: {args.control} control, DDIM-{args.steps}, "
             f"guidance {args.guidance_scale:g}, seed {args.seed}", ""]  # fmt: skip
    rows = {}
    if args.snapshots:
        prompts, controls, masks = eval_scenes(pipe, args.curve_n, args.control)
        rows["curve"] = snapshot_curve(pipe, Path(args.snapshots), prompts, controls, masks, args)
        title = f"{args.control} ControlNet on {args.base}: {args.curve_n} fresh scenes"
        plot_curve(rows["curve"], RESULTS / f"{name}_curve.png", title)
        lines += [f"IoU against training steps ({args.curve_n} fresh scenes per snapshot; "
                  f"plot: `{name}_curve.png`):", "",
                  *_table(name, rows["curve"], "step"), "",
                  converged(rows["curve"]), ""]  # fmt: skip
    if args.controlnet:
        prompts, controls, masks = eval_scenes(pipe, args.n, args.control)
        pipe.load_controlnet(args.controlnet)
        images = []
        final = {"model": f"ControlNet ({args.controlnet})",
                 **score(pipe, prompts, controls, masks, args, True, images)}  # fmt: skip
        detach_controlnet(pipe)
        base = {"model": f"{args.base} alone (prompt only)",
                **score(pipe, prompts, controls, masks, args, False, images)}  # fmt: skip
        save_comparison(controls, images, RESULTS / f"{name}_grid.png", prompts)
        rows["final"] = [final, base]
        lines += [f"{args.n} fresh scenes (seed {SCENE_SEED}); prompt = the scene's caption, "
                  "control = its " + args.control + " map; IoU of the detected objects with the "
                  "scene's object mask:", "",
                  *_table(name, rows["final"], "model"), ""]  # fmt: skip
    seconds = time.time() - start
    lines += [f"{platform.machine()}, torch {torch.__version__}, "
              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, {seconds:.0f} s. "
              f"`python benchmarks/controlnet_iou.py {' '.join(sys.argv[1:])}`"]  # fmt: skip
    write_report(name, lines, rows)


if __name__ == "__main__":
    main()
