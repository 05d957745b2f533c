"""`hwaksan train`: train a diffusion model on the shapes world, digits or a folder of images."""

from __future__ import annotations

import click

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    IntList,
    PositiveInt,
    fresh_run_folder,
    max_minutes_option,
    run_folder_options,
)
from hwaksan.diffusion.schedule import SCHEDULES
from hwaksan.runs.diffusion import DiffusionRun, run_diffusion
from hwaksan.train.loop import TrainConfig, channels_last_default


@click.command("train")
@click.option("--data", default="shapes", show_default=True, help="shapes, digits, or a folder")
@click.option("--preset", default="tiny", show_default=True, help="U-Net size: tiny, small, base")
@click.option("--resolution", type=PositiveInt(1024), default=None,
              help="pixels (default: 32 shapes, 16 digits)")  # fmt: skip
@click.option("--channels", type=IntList("32,64,128", what="widths"), default=None,
              help="override the preset's widths, e.g. 32,64,128")  # fmt: skip
@click.option("--attention-resolutions", type=IntList("16,8", what="sizes"), default=None,
              help="sizes that get attention, e.g. 16,8 (default: half the input)")  # fmt: skip
@click.option(
    "--steps", type=PositiveInt(10**9), default=2000, show_default=True, help="optimizer steps"
)
@click.option("--batch-size", type=PositiveInt(65536), default=64, show_default=True)
@click.option(
    "--grad-accum",
    type=PositiveInt(4096),
    default=1,
    show_default=True,
    help="micro-batches a step",
)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=2e-3, show_default=True)
@click.option(
    "--warmup", type=BoundedInt(0, 10**9), default=100, show_default=True, help="lr warm-up steps"
)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant",
              show_default=True)  # fmt: skip
@run_folder_options("runs/train")
@click.option("--class-conditional", is_flag=True, help="condition on the data's labels")
@click.option("--autoencoder", default=None, help="train in its latent space: a name or folder")
@click.option("--text-encoder", default=None,
              help="text-to-image on captions: mini_clip, minilm or a folder")  # fmt: skip
@click.option(
    "--context-layers",
    type=BoundedInt(0, 64),
    default=0,
    show_default=True,
    help="text-to-image: trainable transformer layers that re-read the prompt's tokens",
)
@click.option(
    "--train-text-encoder",
    is_flag=True,
    help="text-to-image: the diffusion loss trains the (mini-CLIP) text encoder too",
)
@click.option(
    "--init-from",
    default=None,
    help="start from a trained model's U-Net (name or folder); new parts start fresh",
)
@max_minutes_option(help="stop after this much training time")
@click.option("--prediction-type", default="v_prediction", show_default=True,
              type=click.Choice(["epsilon", "sample", "v_prediction"]))  # fmt: skip
@click.option("--schedule", type=click.Choice(SCHEDULES), default="cosine", show_default=True)
@click.option(
    "--snr-gamma",
    type=FiniteFloat(0, open_min=True),
    default=None,
    help="min-SNR-gamma loss weighting (5)",
)
@click.option("--learn-sigma", is_flag=True, help="learned variance, hybrid loss")
@click.option("--bf16", is_flag=True, help="bf16 autocast")
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="memory format; default: on for fp32 on the CPU (1.27x there), else off",
)
@click.option("--ema-decay", type=FiniteFloat(0, 1, open_max=True), default=0.999,
              show_default=True, help="0 = no EMA")  # fmt: skip
@click.option("--grad-clip", type=FiniteFloat(0), default=1.0, show_default=True, help="0 = off")
@click.option(
    "--sample-every",
    type=BoundedInt(0, 10**9),
    default=500,
    show_default=True,
    help="0 = at the end",
)
@click.option(
    "--num-samples", type=BoundedInt(0, 1024), default=16, show_default=True, help="images a grid"
)
@click.option(
    "--sample-steps", type=PositiveInt(1000), default=50, show_default=True, help="DDIM steps"
)
@click.option("--checkpoint-every", type=PositiveInt(10**9), default=500, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--scenes", type=PositiveInt(10**7), default=None,
              help="shapes: scenes to render (default 8000 captioned, 20000 plain)")  # fmt: skip
@click.option("--objects", type=BoundedInt(1, 3), default=1, show_default=True,
              help="shapes: 1 to this many objects per scene (beyond 1: no labels)")  # fmt: skip
@click.option("--grounding-loss", type=FiniteFloat(0), default=0.0,
              help="text-to-image on shapes: token grounding loss weight")  # fmt: skip
@click.option(
    "--inpainting",
    is_flag=True,
    help="a dedicated inpainting model: random box masks, the mask and the masked "
    "image (latents) read by concatenation; --init-from widens the source's input",
)
def command(**o) -> None:
    """Train a diffusion model; writes checkpoints, log.csv, loss.png, samples/ and model/."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"],
        grad_accum=o["grad_accum"], lr=o["lr"], lr_warmup_steps=o["warmup"],
        lr_schedule=o["lr_schedule"], grad_clip=o["grad_clip"] or None,
        ema_decay=o["ema_decay"] or None, bf16=o["bf16"], channels_last=_channels_last(o),
        seed=o["seed"], checkpoint_every=o["checkpoint_every"], sample_every=o["sample_every"],
        resume=o["resume"], max_minutes=o["max_minutes"],
    )  # fmt: skip
    run = DiffusionRun(
        data=o["data"], resolution=o["resolution"], preset=o["preset"],
        class_conditional=o["class_conditional"], prediction_type=o["prediction_type"],
        schedule=o["schedule"], snr_gamma=o["snr_gamma"], learn_sigma=o["learn_sigma"],
        sample_steps=o["sample_steps"], num_samples=o["num_samples"], train=config,
        unet_overrides={
            **_overrides(o["channels"], o["attention_resolutions"]),
            **({"context_layers": o["context_layers"]} if o["context_layers"] else {}),
        },
        autoencoder=o["autoencoder"], text_encoder=o["text_encoder"], init_from=o["init_from"],
        train_text_encoder=o["train_text_encoder"], scenes=o["scenes"], max_objects=o["objects"],
        grounding_weight=o["grounding_loss"], inpainting=o["inpainting"],
    )  # fmt: skip
    _, result = run_diffusion(run)
    click.echo(f"trained {result.step} steps; model saved to {result.out_dir / 'model'}")


def _channels_last(o: dict) -> bool:
    """As asked, else the loop's default (channels-last for fp32 on the CPU)."""
    if o["channels_last"] is not None:
        return o["channels_last"]
    return channels_last_default(o["bf16"])


def _overrides(channels: tuple | None, attention_resolutions: tuple | None = None) -> dict:
    """The U-Net fields the command line overrides (already checked lists of sizes)."""
    named = {"channels": channels, "attention_resolutions": attention_resolutions}
    return {name: value for name, value in named.items() if value is not None}
