"""Train a shapes layout-to-image model (`hwaksan.runs.layout`), e.g.

python scripts/train_layout.py --steps 4000 --out runs/layout

`--init-from shapes_t2i_64 --context-layers 2` starts the U-Net from the text-to-image model (same
channels and attention; its context layers then read the layout tokens instead of the text's).
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
    p.add_argument("--attention-resolutions", default="8")
    p.add_argument("--context-layers", type=int, default=0)
    p.add_argument(
        "--boxes",
        choices=("fourier", "grid"),
        default="fourier",
        help="a box as Fourier features of its corners (GLIGEN) or on a grid (LDM)",
    )
    p.add_argument("--grid", type=int, default=16, help="--boxes grid: grid x grid positions")
    p.add_argument("--init-from", default=None, help="a model whose U-Net starts this one's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--out", default="runs/layout")
    a = p.parse_args()
    run = LayoutRun(
        scenes=a.scenes, autoencoder=None if a.autoencoder == "none" else a.autoencoder,
        init_from=a.init_from, encoder={"boxes": a.boxes, "grid": a.grid},
        unet_overrides=dict(
            channels=tuple(int(c) for c in a.channels.split(",")),
            attention_resolutions=tuple(int(r) for r in a.attention_resolutions.split(",")),
            context_layers=a.context_layers,
        ),
        train=TrainConfig(
            out_dir=a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_warmup_steps=100,
            lr_schedule="cosine", ema_decay=0.995, max_minutes=a.minutes, sample_every=1000,
            checkpoint_every=500, seed=a.seed, bf16=a.bf16,
        ),
    )  # fmt: skip
    _, result = run_layout(run)
    print(f"trained {result.step} steps; model in {a.out}/model")


if __name__ == "__main__":
    main()
