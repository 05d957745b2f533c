"""`hwaksan train-controlnet`: a ControlNet (Zhang et al. 2023) that steers a frozen
text-to-image shapes model with segmentation or edge maps."""

from __future__ import annotations

import click

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    PositiveInt,
    fresh_run_folder,
    run_folder_options,
)
from hwaksan.train.loop import TrainConfig


@click.command(
    "train-controlnet",
    short_help="Train a ControlNet that steers a frozen text-to-image model with a control map.",
)
@click.option("--base", default="shapes_t2i_64", show_default=True,
              help="the frozen model: a shipped name or folder "
              "(a shapes-world text model)")  # fmt: skip
@click.option("--control", type=click.Choice(["segmentation", "edges"]), default="segmentation",
              show_default=True, help="the control map: object silhouettes or edges")  # fmt: skip
@click.option("--scenes", type=PositiveInt(10**7), default=8000, show_default=True,
              help="training scenes (each with every phrasing of its caption)")  # fmt: skip
@click.option(
    "--steps", type=PositiveInt(10**9), default=1200, show_default=True, help="optimizer steps"
)
@click.option("--batch-size", type=PositiveInt(65536), default=16, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=3e-4, show_default=True)
@click.option("--cond-drop", type=FiniteFloat(0, 1), default=0.5, show_default=True,
              help="share of empty prompts (ControlNet's 50%)")  # fmt: skip
@click.option("--snapshot-every", type=BoundedInt(0, 10**9), default=100, show_default=True,
              help="save the ControlNet every k steps to <out>/snapshots (0 = never)")  # fmt: skip
@run_folder_options("runs/controlnet")
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(**o) -> None:
    """Train a ControlNet on the base model's own shapes world; the base stays frozen (its
    weights bit-identical). Writes checkpoints, log.csv, snapshots/ and model/ (an adapter
    folder: `hwaksan generate ... --controlnet OUT/model --control-image map.png`)."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    from hwaksan.runs.controlnet import ControlNetRun, run_controlnet

    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        ema_decay=None, seed=o["seed"], checkpoint_every=250, resume=o["resume"],
    )  # fmt: skip
    run = ControlNetRun(
        base=o["base"], control=o["control"], scenes=o["scenes"], cond_drop_prob=o["cond_drop"],
        snapshot_every=o["snapshot_every"], train=config,
    )  # fmt: skip
    result, folder = run_controlnet(run)
    click.echo(f"trained {result.step} steps; ControlNet saved to {folder}")
