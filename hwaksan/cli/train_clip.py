"""`hwaksan train-clip`: train a mini-CLIP (text + image towers, contrastive) on shapes captions."""

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
    "train-clip", short_help="Train a mini-CLIP (text + image towers) on shapes captions."
)
@click.option(
    "--steps", type=PositiveInt(10**9), default=3000, show_default=True, help="optimizer steps"
)
@click.option("--batch-size", type=BoundedInt(2, 65536), default=128, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=1e-3, show_default=True)
@click.option(
    "--warmup", type=BoundedInt(0, 10**9), default=200, show_default=True, help="lr warm-up steps"
)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine",
              show_default=True)  # fmt: skip
@click.option("--weight-decay", type=FiniteFloat(0, 10), default=0.01, show_default=True)
@click.option("--ema-decay", type=FiniteFloat(0, 1, open_max=True), default=0.999,
              show_default=True, help="0 = no EMA")  # fmt: skip
@click.option("--resolution", type=click.Choice([16, 32, 64]), default=32, show_default=True)
@click.option(
    "--max-objects", type=BoundedInt(1, 9), default=2, show_default=True, help="objects a scene"
)
@click.option(
    "--scenes", type=BoundedInt(2, 10**7), default=50_000, show_default=True, help="scenes rendered"
)
@click.option("--hard-negatives/--no-hard-negatives", default=True, show_default=True,
              help="pair each image with a one-attribute-off caption (NegCLIP)")  # fmt: skip
@click.option("--relation-negatives", type=FiniteFloat(0, 1), default=0.5, show_default=True,
              help="share of two-object negatives that swap the objects' places")  # fmt: skip
@click.option("--image-attention", type=BoundedInt(0, 64), default=2, show_default=True,
              help="self-attention layers over the image tower's final cells")  # fmt: skip
@click.option(
    "--width", type=PositiveInt(4096), default=128, show_default=True, help="text hidden size"
)
@click.option(
    "--layers", type=PositiveInt(64), default=3, show_default=True, help="text transformer layers"
)
@max_minutes_option()
@click.option("--eval-scenes", type=BoundedInt(0, 10**6), default=500, show_default=True,
              help="fresh scenes per attribute for the retrieval score (0: skip)")  # fmt: skip
@run_folder_options("runs/clip")
@click.option("--checkpoint-every", type=PositiveInt(10**9), default=500, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(**o) -> None:
    """Train a mini-CLIP; writes checkpoints, log.csv, loss.png and model/ (with its retrieval
    accuracy per attribute in model/retrieval.json)."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    import json
    from pathlib import Path

    from hwaksan.eval.retrieval import retrieval_accuracy
    from hwaksan.nets.text.mini_clip import (
        MiniCLIPConfig,
        MiniCLIPTextConfig,
        MiniCLIPVisionConfig,
    )
    from hwaksan.train.clip import CLIPRun, run_clip

    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        lr_warmup_steps=o["warmup"], lr_schedule=o["lr_schedule"],
        weight_decay=o["weight_decay"], ema_decay=o["ema_decay"] or None, seed=o["seed"],
        checkpoint_every=o["checkpoint_every"], resume=o["resume"], max_minutes=o["max_minutes"],
    )  # fmt: skip
    model = MiniCLIPConfig(
        text=MiniCLIPTextConfig(width=o["width"], layers=o["layers"]),
        vision=MiniCLIPVisionConfig(attention_layers=o["image_attention"]),
    )
    run = CLIPRun(
        resolution=o["resolution"], max_objects=o["max_objects"], scenes=o["scenes"],
        hard_negatives=o["hard_negatives"], relation_negatives=o["relation_negatives"],
        model=model, train=config,
    )  # fmt: skip
    clip, result = run_clip(run)
    folder = Path(config.out_dir) / "model"
    click.echo(f"trained {result.step} steps; model saved to {folder}")
    if o["eval_scenes"] and result.is_main:
        scores = retrieval_accuracy(clip, n=o["eval_scenes"], resolution=o["resolution"])
        (folder / "retrieval.json").write_text(json.dumps(scores, indent=1))
        for attribute, s in scores.items():
            click.echo(f"{attribute:>9}: {s['accuracy']:.1%} (chance {s['chance']:.1%})")
