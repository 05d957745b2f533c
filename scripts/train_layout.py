"""Train a shapes layout-to-image model (`hwaksan.runs.layout`), e.g.

python scripts/train_layout.py --steps 4000 --out runs/layout
"""

from __future__ import annotations

import argparse

from hwaksan.runs.layout import LayoutRun, run_layout
from hwaksan.train.loop import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=20_000)
    p.add_argument("--autoencoder", default="autoencoder_kl", help="'none': pixel space")
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default="runs/layout")
    a = p.parse_args()
    run = LayoutRun(
        scenes=a.scenes, autoencoder=None if a.autoencoder == "none" else a.autoencoder,
        unet_overrides=dict(channels=tuple(int(c) for c in a.channels.split(",")),
                            attention_resolutions=(8,)),
        train=TrainConfig(
            out_dir=a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_warmup_steps=100,
            lr_schedule="cosine", ema_decay=0.995, max_minutes=a.minutes, sample_every=1000,
            checkpoint_every=500,
        ),
    )  # fmt: skip
    _, result = run_layout(run)
    print(f"trained {result.step} steps; model in {a.out}/model")


if __name__ == "__main__":
    main()
