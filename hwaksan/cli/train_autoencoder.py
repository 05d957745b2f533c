"""`hwaksan train-autoencoder`: train a KL or VQ autoencoder (with a PatchGAN) for latents."""

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
from hwaksan.train.autoencoder import AutoencoderLossConfig
from hwaksan.train.autoencoder_run import AutoencoderRun, run_autoencoder
from hwaksan.train.loop import TrainConfig


@click.command("train-autoencoder")
@click.option("--kind", type=click.Choice(["kl", "vq"]), default="kl", show_default=True)
@click.option("--data", default="shapes", show_default=True, help="shapes, digits, or a folder")
@click.option("--resolution", type=PositiveInt(1024), default=64, show_default=True)
@click.option(
    "--num-images", type=PositiveInt(10**7), default=16000, show_default=True, help="shapes renders"
)
@click.option("--channels", type=IntList("32,64,64", what="widths"), default="32,64,64",
              show_default=True, help="widths per level; f = 2 ** (levels - 1)")  # fmt: skip
@click.option("--latent-channels", type=PositiveInt(1024), default=4, show_default=True)
@click.option(
    "--num-embeddings", type=PositiveInt(2**20), default=256, show_default=True, help="VQ codebook"
)
@click.option("--steps", type=PositiveInt(10**9), default=2000, show_default=True)
@click.option("--batch-size", type=PositiveInt(65536), default=32, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=5e-4, show_default=True)
@click.option(
    "--warmup", type=BoundedInt(0, 10**9), default=100, show_default=True, help="lr warm-up steps"
)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine",
              show_default=True)  # fmt: skip
@click.option("--disc-start", type=BoundedInt(0, 10**9), default=1000, show_default=True,
              help="steps before the PatchGAN switches on")  # fmt: skip
@click.option("--disc-weight", type=FiniteFloat(0), default=0.5, show_default=True)
@click.option("--no-disc", is_flag=True, help="no discriminator (L1 + perceptual only)")
@click.option(
    "--perceptual-weight", type=FiniteFloat(0), default=1.0, show_default=True, help="0 = off"
)
@click.option("--kl-weight", type=FiniteFloat(0), default=1e-6, show_default=True)
@run_folder_options("runs/autoencoder")
@click.option("--bf16", is_flag=True, help="bf16 autocast")
@max_minutes_option()
@click.option(
    "--sample-every",
    type=BoundedInt(0, 10**9),
    default=500,
    show_default=True,
    help="0 = at the end",
)
@click.option("--checkpoint-every", type=PositiveInt(10**9), default=250, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(**o) -> None:
    """Train an autoencoder; writes checkpoints, log.csv, loss.png, samples/ and model/."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        lr_warmup_steps=o["warmup"], lr_schedule=o["lr_schedule"], adam_betas=(0.5, 0.9),
        ema_decay=None, bf16=o["bf16"], seed=o["seed"], checkpoint_every=o["checkpoint_every"],
        sample_every=o["sample_every"], resume=o["resume"], max_minutes=o["max_minutes"],
    )  # fmt: skip
    losses = AutoencoderLossConfig(
        perceptual_weight=o["perceptual_weight"], kl_weight=o["kl_weight"],
        disc_start=o["disc_start"], disc_weight=o["disc_weight"],
    )  # fmt: skip
    run = AutoencoderRun(
        kind=o["kind"], data=o["data"], resolution=o["resolution"], num_images=o["num_images"],
        channels=o["channels"], latent_channels=o["latent_channels"],
        num_embeddings=o["num_embeddings"], discriminator=not o["no_disc"],
        perceptual=o["perceptual_weight"] > 0, losses=losses, train=config,
    )  # fmt: skip
    _, result = run_autoencoder(run)
    click.echo(f"trained {result.step} steps; autoencoder saved to {result.out_dir / 'model'}")
