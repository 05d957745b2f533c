"""Latent vs pixel diffusion at 64 px on the shapes world, with the same wall-clock budget.

The claim of Rombach et al. 2022 (LDM), measured on this CPU: train a pixel-space model and a
latent model (on a trained autoencoder) for the same minutes, then compare sampling cost per
image (seconds, and FLOPs by `torch.utils.flop_counter`, decoder included) and quality
(validity, coverage, Frechet distance). Both use one recipe: v-prediction, cosine schedule,
batch 64, AdamW 2e-3, EMA 0.995, trailing DDIM-50.

    python benchmarks/latent_vs_pixel.py train pixel --minutes 10 --out runs/lvp_pixel
    python benchmarks/latent_vs_pixel.py train latent --autoencoder autoencoder_kl \
        --minutes 10 --out runs/lvp_latent
    python benchmarks/latent_vs_pixel.py measure --pixel runs/lvp_pixel --latent runs/lvp_latent
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

RESOLUTION = 64
DOCS = Path(__file__).resolve().parent.parent / "docs"
CACHE_FILES = ("lvp_samples.safetensors", "lvp_cost.json")  # one side's samples and their cost
# Pixel space: four levels (64 -> 8 px), attention only at 8 px (at 32 px it would dominate).
PIXEL_UNET = dict(channels=(32, 64, 64, 128), attention_resolutions=(8,), channels_last=True)
# Latent space (16 px for f = 4, 8 px for f = 8): the shipped 16 px shapes model's tiny U-Net.
LATENT_UNET = dict(channels=(32, 64), channels_last=True)


def train(args) -> None:
    """Train one side for `--minutes` of wall clock; write <out>/budget.json beside the model."""
    from hwaksan.runs.diffusion import DiffusionRun, run_diffusion
    from hwaksan.train.data import shapes_data
    from hwaksan.train.latent import latent_data
    from hwaksan.train.loop import TrainConfig

    torch.set_num_threads(args.threads)
    for stale in CACHE_FILES:  # samples of an earlier model in this folder
        (Path(args.out) / stale).unlink(missing_ok=True)
    data = shapes_data(RESOLUTION, length=args.length, seed=0)  # rendering: outside the budget
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    latent = args.space == "latent"
    if latent:  # encoding the training set once is part of the latent side's budget
        data = latent_data(args.autoencoder, data)
    minutes = args.minutes - (time.perf_counter() - start_wall) / 60
    run = DiffusionRun(
        data="shapes", resolution=RESOLUTION, preset="tiny", num_samples=16,
        autoencoder=args.autoencoder if latent else None,
        unet_overrides=LATENT_UNET if latent else PIXEL_UNET,
        train=TrainConfig(
            out_dir=args.out, steps=args.max_steps, batch_size=64, lr=2e-3, lr_warmup_steps=50,
            ema_decay=0.995, checkpoint_every=250, sample_every=0, max_minutes=minutes,
            channels_last=True, progress=False,
        ),
    )  # fmt: skip
    pipe, result = run_diffusion(run, data)
    info = dict(
        space=args.space, autoencoder=args.autoencoder if latent else None,
        budget_minutes=args.minutes, steps=result.step,
        encode_s=round(data.encode_seconds, 1) if latent else 0.0,
        wall_s=round(time.perf_counter() - start_wall, 1),
        cpu_s=round(time.process_time() - start_cpu, 1),
        latent_scale=getattr(pipe, "latent_scale", 1.0),
        sample_shape=list(getattr(pipe, "sample_shape", None) or pipe.image_shape),
        unet_params=sum(p.numel() for p in pipe.unet.parameters()),
        machine=platform.machine(), threads=args.threads,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip
    (Path(args.out) / "budget.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info), flush=True)


def sampling_flops(pipe, steps: int) -> tuple[float, float]:
    """FLOPs to make one image with DDIM-`steps` (decoder included), and the decoder's share."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        pipe.generate(1, sampler="ddim", steps=steps, output_type="pt")
    decoder = 0.0
    if pipe.autoencoder is not None:
        z = torch.zeros(1, *pipe.sample_shape)
        with FlopCounterMode(display=False) as only_decoder, torch.no_grad():
            pipe.autoencoder.decode(z)
        decoder = only_decoder.get_total_flops()
    return float(counter.get_total_flops()), float(decoder)


def score(images: torch.Tensor, real_features: torch.Tensor) -> dict:
    """Validity, coverage (TV, lower is better) and Frechet distance to held-out renders."""
    from hwaksan.data import shapes
    from hwaksan.eval.feature_extractors import extract_features
    from hwaksan.eval.frechet import frechet_distance_from_features
    from hwaksan.eval.shapes_score import validity_coverage

    config = shapes.ShapesConfig(resolution=RESOLUTION, min_objects=1, max_objects=1)
    checks = validity_coverage(images, config)
    fd = frechet_distance_from_features(extract_features(images), real_features)
    return dict(validity=checks["validity"], coverage_tv=checks["coverage"], frechet=fd)


def sample_side(folder: str, n: int, steps: int) -> tuple[torch.Tensor, dict]:
    """`n` DDIM samples of one side (EMA weights, seed 0) and their cost, cached in the run folder
    (lvp_samples.safetensors + lvp_cost.json) so each side can be sampled right after training."""
    from safetensors.torch import load_file, save_file

    import hwaksan as hk

    cache, cost_file = (Path(folder) / name for name in CACHE_FILES)
    if cost_file.exists():
        cost = json.loads(cost_file.read_text())
        if cost["n"] == n and cost["steps"] == steps:
            return load_file(str(cache))["images"], cost
    pipe = hk.load(folder, device="cpu")
    flops, decoder_flops = sampling_flops(pipe, steps)
    wall, cpu = time.perf_counter(), time.process_time()
    images = pipe.generate(n, sampler="ddim", steps=steps, seed=0, output_type="pt")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cost = dict(
        n=n, steps=steps, sample_shape=list(pipe.sample_shape),
        gflops_per_image=round(flops / 1e9, 2), decoder_gflops=round(decoder_flops / 1e9, 2),
        seconds_per_image=round(wall / n, 3), cpu_seconds_per_image=round(cpu / n, 3),
        threads=torch.get_num_threads(),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip
    save_file({"images": images.contiguous()}, str(cache))
    cost_file.write_text(json.dumps(cost, indent=2))
    print(json.dumps(cost), flush=True)
    return images, cost


def measure(args) -> None:
    """Score each side's samples (sampling them first if not cached) against held-out renders."""
    import hwaksan as hk
    from hwaksan.data import shapes
    from hwaksan.eval.feature_extractors import extract_features
    from hwaksan.images import save_grid

    torch.set_num_threads(args.threads)
    config = shapes.ShapesConfig(resolution=RESOLUTION, min_objects=1, max_objects=1)
    real = shapes.render_batch(args.n_real, seed=1, config=config)[0]  # not the training seed
    real_features = extract_features(real)
    other = shapes.render_batch(args.n, seed=2, config=config)[0]
    rows = [dict(model="real renders (floor)", **score(other, real_features))]
    grids = []
    for name, folder in (("pixel", args.pixel), ("latent", args.latent)):
        images, cost = sample_side(folder, args.n, args.steps)
        budget = json.loads((Path(folder) / "budget.json").read_text())
        grids.append(images[:8])
        rows.append(dict(
            model=name, train_steps=budget["steps"], train_minutes=budget["budget_minutes"],
            train_cpu_minutes=round(budget["cpu_s"] / 60, 1), encode_s=budget["encode_s"],
            unet_params=budget["unet_params"], **cost, **score(images, real_features),
        ))  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
        if name == "latent":  # the ceiling of the latent side: the autoencoder's reconstructions
            autoencoder = hk.load(folder, device="cpu").autoencoder
            with torch.no_grad():
                recon = autoencoder.decode(autoencoder.encode_latents(other)).clamp(-1, 1)
            rows.append(dict(model="autoencoder reconstructions", **score(recon, real_features)))
    save_grid(torch.cat(grids), DOCS / "latent_vs_pixel_samples.png", nrow=8, scale=2)
    report(rows, args)


def report(rows: list[dict], args) -> None:
    """The markdown table + JSON (benchmarks/results/) and the plot (docs/)."""
    from report import write_report

    pixel, latent = (next(r for r in rows if r["model"] == m) for m in ("pixel", "latent"))
    ratios = dict(
        flops=round(pixel["gflops_per_image"] / latent["gflops_per_image"], 1),
        seconds=round(pixel["seconds_per_image"] / latent["seconds_per_image"], 1),
        cpu_seconds=round(pixel["cpu_seconds_per_image"] / latent["cpu_seconds_per_image"], 1),
    )
    head = (
        "| model | train steps (budget, min) | GFLOP / image | s / image (cpu s) | validity "
        "| coverage TV | Frechet |"
    )
    lines = [
        f"# Latent vs pixel diffusion, 64 px shapes, same training wall clock ({args.n} samples)",
        "", head, "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        cost = "" if "gflops_per_image" not in r else (
            f"{r['gflops_per_image']} | {r['seconds_per_image']} ({r['cpu_seconds_per_image']})"
        )  # fmt: skip
        steps = f"{r['train_steps']} ({r['train_minutes']})" if "train_steps" in r else ""
        lines.append(
            f"| {r['model']} | {steps} | {cost or ' | '} | {r['validity']:.3f} | "
            f"{r['coverage_tv']:.3f} | {r['frechet']:.2f} |"
        )
    lines += ["", f"Latent sampling is {ratios['flops']}x cheaper in FLOPs, {ratios['seconds']}x "
              f"in wall seconds ({ratios['cpu_seconds']}x in CPU seconds).",
              "Budget = the training loop's wall clock on one thread; the latent side's includes "
              f"encoding its 20,000 training images once "
              f"({latent['encode_s']} s). The autoencoder's own training is not counted (it is "
              "trained once and shared). DDIM-50 trailing, EMA weights, seed 0; Frechet distance "
              f"on the shipped shapes features against {args.n_real} held-out renders.",
              f"Machine: {platform.machine()}, {args.threads} thread(s), shared; "
              f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}.",
              f"Command: python benchmarks/latent_vs_pixel.py measure --n {args.n}"]  # fmt: skip
    write_report("latent_vs_pixel", lines, dict(rows=rows, ratios=ratios, settings=vars(args)))
    plot(rows, ratios)


def plot(rows: list[dict], ratios: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [r for r in rows if "gflops_per_image" in r]
    names = [r["model"] for r in models]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    axes[0].bar(names, [r["gflops_per_image"] for r in models], color=["tab:gray", "tab:blue"])
    axes[0].set_yscale("log")
    gflops = [r["gflops_per_image"] for r in models]
    axes[0].set_ylim(0.3 * min(gflops), 3 * max(gflops))
    axes[0].set_title(f"sampling GFLOP / image ({ratios['flops']}x)")
    for i, r in enumerate(models):
        axes[0].text(
            i, r["gflops_per_image"], f"{r['seconds_per_image']} s", ha="center", va="bottom"
        )
    x = range(len(rows))
    axes[1].bar([i - 0.2 for i in x], [r["validity"] for r in rows], 0.4, label="validity (up)")
    axes[1].bar(
        [i + 0.2 for i in x], [r["coverage_tv"] for r in rows], 0.4, label="coverage TV (down)"
    )
    axes[1].legend(fontsize=8)
    axes[2].bar(list(x), [r["frechet"] for r in rows], color="tab:orange")
    axes[2].set_title("Frechet distance (down)")
    for ax in axes[1:]:
        ax.set_xticks(list(x), [r["model"].replace(" ", "\n") for r in rows], fontsize=7)
    axes[1].set_title("quality")
    fig.suptitle("64 px shapes: pixel vs latent diffusion, same training wall clock")
    fig.tight_layout()
    fig.savefig(DOCS / "latent_vs_pixel.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one side for a wall-clock budget")
    t.add_argument("space", choices=["pixel", "latent"])
    t.add_argument("--autoencoder", default="autoencoder_kl", help="latent: name or folder")
    t.add_argument("--minutes", type=float, default=10.0)
    t.add_argument("--max-steps", type=int, default=100_000)
    t.add_argument("--length", type=int, default=20_000, help="training images")
    t.add_argument("--out", required=True)
    t.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("measure", help="compare sampling cost and quality")
    m.add_argument("--pixel", default="runs/lvp_pixel")
    m.add_argument("--latent", default="runs/lvp_latent")
    m.add_argument("--n", type=int, default=100, help="samples per model")
    m.add_argument("--n-real", type=int, default=1000, help="held-out renders for Frechet")
    m.add_argument("--steps", type=int, default=50, help="DDIM steps")
    m.add_argument("--threads", type=int, default=1)
    one = sub.add_parser("sample", help="sample one side now and cache it (after training)")
    one.add_argument("folder")
    one.add_argument("--n", type=int, default=100)
    one.add_argument("--steps", type=int, default=50)
    one.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.command == "train":
        train(args)
    elif args.command == "sample":
        torch.set_num_threads(args.threads)
        sample_side(args.folder, args.n, args.steps)
    else:
        measure(args)


if __name__ == "__main__":
    main()
