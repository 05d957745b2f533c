"""`hwaksan train-classifier`: a noise-aware classifier p(y | x_t, t) for classifier guidance."""

from __future__ import annotations

import click

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    IntList,
    PositiveInt,
    fresh_run_folder,
    run_folder_options,
)
from hwaksan.train.loop import TrainConfig


@click.command(
    "train-classifier", short_help="Train a noise-aware classifier for classifier guidance."
)
@click.option("--data", type=click.Choice(["digits", "shapes"]), default="digits",
              show_default=True, help="digits, or single shapes (shape x color)")  # fmt: skip
@click.option(
    "--resolution",
    type=PositiveInt(1024),
    default=None,
    help="pixels (default: 32 shapes, 16 digits)",
)
@click.option(
    "--channels",
    type=IntList("32,64,128", what="widths"),
    default="32,64,128",
    show_default=True,
    help="widths per level",
)
@click.option("--schedule", type=click.Choice(["linear", "cosine"]), default="cosine",
              show_default=True, help="the noise schedule of the model it will guide")  # fmt: skip
@click.option(
    "--steps", type=PositiveInt(10**9), default=2000, show_default=True, help="optimizer steps"
)
@click.option("--batch-size", type=PositiveInt(65536), default=128, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=1e-3, show_default=True)
@click.option(
    "--warmup", type=BoundedInt(0, 10**9), default=100, show_default=True, help="lr warm-up steps"
)
@click.option("--weight-decay", type=FiniteFloat(0, 10), default=0.05, show_default=True)
@click.option("--ema-decay", type=FiniteFloat(0, 1, open_max=True), default=0.999,
              show_default=True, help="0 = no EMA")  # fmt: skip
@run_folder_options("runs/classifier")
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(**o) -> None:
    """Train a noise-aware classifier on noised images at random t; writes checkpoints, log.csv
    and model/ (load it with `--classifier` in `hwaksan sample`)."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    from hwaksan.train.classifier import ClassifierRun, run_classifier

    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        lr_warmup_steps=o["warmup"], lr_schedule="cosine", weight_decay=o["weight_decay"],
        ema_decay=o["ema_decay"] or None, seed=o["seed"], checkpoint_every=500,
        resume=o["resume"],
    )  # fmt: skip
    run = ClassifierRun(
        data=o["data"], resolution=o["resolution"], channels=o["channels"], schedule=o["schedule"],
        train=config,
    )  # fmt: skip
    _, result, accuracy = run_classifier(run)
    click.echo(
        "held-out accuracy by t: " + ", ".join(f"t={t}: {a:.3f}" for t, a in accuracy.items())
    )
    click.echo(f"trained {result.step} steps; classifier saved to {result.out_dir / 'model'}")
