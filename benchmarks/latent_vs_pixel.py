"""Latent vs pixel diffusion at 64 px on the shapes world, with the same wall-clock budget.

The claim of Rombach et al. 2022 (LDM), measured on this CPU: train a pixel-space model and a
latent model (on a trained autoencoder) for the same minutes, then compare sampling cost per
image (seconds, and FLOPs by `torch.utils.flop_counter`, decoder included) and quality
(validity, coverage, Frechet distance). Both use one recipe: v-prediction, cosine schedule,
batch 64, AdamW 2e-3, EMA 0.995, trailing DDIM-50.

    python benchmarks/latent_vs_pixel.py train pixel --minutes 15 --out runs/lvp_pixel
    python benchmarks/latent_vs_pixel.py train latent --autoencoder autoencoder_kl \
        --minutes 15 --out runs/lvp_latent
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
# Pixel space: four levels (64 -> 8 px), attention only at 8 px (at 32 px it would dominate).
PIXEL_UNET = dict(channels=(32, 64, 64, 128), attention_resolutions=(8,), channels_last=True)
# Latent space (16 px for f = 4, 8 px for f = 8): the shipped 16 px shapes model's tiny U-Net.
LATENT_UNET = dict(channels=(32, 64), channels_last=True)


def train(args) -> None:
    """Train one side for `--minutes` of wall clock; write <out>/budget.json beside the model."""
    from hwaksan.train.data import shapes_data
    from hwaksan.train.loop import TrainConfig
    from hwaksan.train.run import DiffusionRun, run_diffusion

    torch.set_num_threads(args.threads)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    data = shapes_data(RESOLUTION, length=args.length, seed=0)
    latent = args.space == "latent"
    run = DiffusionRun(
        data="shapes", resolution=RESOLUTION, preset="tiny", num_samples=16,
        autoencoder=args.autoencoder if latent else None,
        unet_overrides=LATENT_UNET if latent else PIXEL_UNET,
        train=TrainConfig(
            out_dir=args.out, steps=args.max_steps, batch_size=64, lr=2e-3, lr_warmup_steps=50,
            ema_decay=0.995, checkpoint_every=250, sample_every=0, max_minutes=args.minutes,
            channels_last=True, progress=False,
        ),
    )  # fmt: skip
    pipe, result = run_diffusion(run, data)
    info = dict(
        space=args.space, autoencoder=args.autoencoder if latent else None,
        budget_minutes=args.minutes, steps=result.step,
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one side for a wall-clock budget")
    t.add_argument("space", choices=["pixel", "latent"])
    t.add_argument("--autoencoder", default="autoencoder_kl", help="latent: name or folder")
    t.add_argument("--minutes", type=float, default=15.0)
    t.add_argument("--max-steps", type=int, default=100_000)
    t.add_argument("--length", type=int, default=20_000, help="training images")
    t.add_argument("--out", required=True)
    t.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.command == "train":
        train(args)


if __name__ == "__main__":
    main()
