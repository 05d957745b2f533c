"""Train a shapes super-resolution model (`hwaksan.runs.super_resolution`), e.g.

python scripts/train_super_resolution.py --low-res 16 --steps 4000 --out runs/sr16
"""

from __future__ import annotations

import argparse

from hwaksan.runs.super_resolution import SuperResRun, run_super_resolution
from hwaksan.train.loop import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--low-res", type=int, default=16)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--scenes", type=int, default=20_000)
    p.add_argument("--autoencoder", default="autoencoder_kl", help="'none': pixel space")
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--out", default="runs/sr")
    a = p.parse_args()
    channels = tuple(int(c) for c in a.channels.split(","))
    run = SuperResRun(
        low_res=a.low_res, resolution=a.resolution, scenes=a.scenes,
        autoencoder=None if a.autoencoder == "none" else a.autoencoder,
        unet_overrides=dict(channels=channels, attention_resolutions=()),
        train=TrainConfig(
            out_dir=a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_warmup_steps=100,
            lr_schedule="cosine", ema_decay=0.995, bf16=a.bf16, max_minutes=a.minutes,
            sample_every=1000, checkpoint_every=500,
        ),
    )  # fmt: skip
    pipe, result = run_super_resolution(run)
    print(f"trained {result.step} steps; model in {a.out}/model")


if __name__ == "__main__":
    main()
