"""`hwaksan train-ip-adapter`: train an IP-Adapter (an image prompt) on a frozen text-to-image
model of the shapes world."""

from __future__ import annotations

import click

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    PositiveInt,
    fresh_run_folder,
    max_minutes_option,
    run_folder_options,
)
from hwaksan.train.loop import TrainConfig


@click.command(
    "train-ip-adapter",
    short_help="Train an IP-Adapter (image prompts) on a frozen text-to-image model.",
)
@click.option("--model", default="shapes_t2i_64", show_default=True,
              help="the frozen base: a shipped name or a folder")  # fmt: skip
@click.option(
    "--steps", type=PositiveInt(10**9), default=4000, show_default=True, help="optimizer steps"
)
@click.option("--batch-size", type=BoundedInt(2, 65536), default=64, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=1e-3, show_default=True)
@click.option(
    "--warmup", type=BoundedInt(0, 10**9), default=100, show_default=True, help="lr warm-up steps"
)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine",
              show_default=True)  # fmt: skip
@click.option("--ema-decay", type=FiniteFloat(0, 1, open_max=True), default=0.995,
              show_default=True, help="0 = no EMA")  # fmt: skip
@click.option("--bf16", is_flag=True, help="bf16 autocast")
@click.option("--scenes", type=BoundedInt(1, 10**6), default=10_000, show_default=True,
              help="shapes-world scenes rendered")  # fmt: skip
@click.option("--num-tokens", type=BoundedInt(1, 64), default=4, show_default=True,
              help="image tokens the projection makes")  # fmt: skip
@click.option("--reference", type=click.Choice(["moved", "same"]), default="moved",
              show_default=True, help="the reference image: the scene's objects moved to new "
              "places, or the training image itself (the paper's)")  # fmt: skip
@click.option("--position-captions", type=FiniteFloat(0, 1), default=0.5, show_default=True,
              help="share of captions (image kept) cut to their position words or to the "
              "empty prompt, half each")  # fmt: skip
@click.option("--drop-prob", type=FiniteFloat(0, 0.3), default=0.05, show_default=True,
              help="text, image and both are each dropped this often")  # fmt: skip
@max_minutes_option()
@run_folder_options("runs/ip_adapter")
@click.option("--checkpoint-every", type=PositiveInt(10**9), default=500, show_default=True)
@click.option("--sample-every", type=BoundedInt(0, 10**9), default=0, show_default=True,
              help="progress grid every N steps (0: at the end)")  # fmt: skip
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(**o) -> None:
    """Train an IP-Adapter on --model (frozen) with the shipped mini-CLIP image tower; writes
    checkpoints, log.csv, loss.png, samples/ and model/ (the adapter folder), e.g.

    hwaksan train-ip-adapter --steps 4000 --bf16 --out runs/ip_adapter
    """
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    from pathlib import Path

    from hwaksan.runs.ip_adapter import IPAdapterRun, run_ip_adapter

    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        lr_warmup_steps=o["warmup"], lr_schedule=o["lr_schedule"],
        ema_decay=o["ema_decay"] or None, bf16=o["bf16"], seed=o["seed"],
        checkpoint_every=o["checkpoint_every"], sample_every=o["sample_every"],
        resume=o["resume"], max_minutes=o["max_minutes"],
    )  # fmt: skip
    run = IPAdapterRun(
        model=o["model"], scenes=o["scenes"], num_tokens=o["num_tokens"],
        reference=o["reference"], position_captions=o["position_captions"],
        drop_prob=o["drop_prob"], train=config,
    )  # fmt: skip
    _, result = run_ip_adapter(run)
    folder = Path(config.out_dir) / "model"
    click.echo(f"trained {result.step} steps; IP-Adapter saved to {folder}")
