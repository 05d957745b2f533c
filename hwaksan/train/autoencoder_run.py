"""Train an autoencoder end to end from a few choices (what `hwaksan train-autoencoder` calls):
build the data, the KL or VQ autoencoder, the PatchGAN and the perceptual net, run the loop with
the autoencoder recipe, and save `<out>/model` (what `load_autoencoder` reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from hwaksan.errors import HwaksanError
from hwaksan.nets.autoencoder import AutoencoderConfig, AutoencoderKL, VQModel, save_autoencoder
from hwaksan.nets.discriminator import DiscriminatorConfig, PatchDiscriminator
from hwaksan.train.autoencoder import AutoencoderLossConfig, AutoencoderRecipe
from hwaksan.train.data import TensorItems, TrainingData, training_data
from hwaksan.train.loop import TrainConfig, TrainResult, train

KINDS = {"kl": AutoencoderKL, "vq": VQModel}


@dataclass
class AutoencoderRun:
    """The choices that define an autoencoder training run (TrainConfig holds the loop's)."""

    kind: str = "kl"  # "kl" | "vq"
    data: str = "shapes"  # "shapes" (1-3 objects, all six shapes) | "digits" | a folder
    resolution: int = 64
    num_images: int = 16_000  # shapes renders held in memory
    channels: tuple[int, ...] = (32, 64, 64)  # f = 2 ** (len - 1)
    latent_channels: int = 4
    num_embeddings: int = 256  # VQ codebook size
    discriminator: bool = True
    perceptual: bool = True  # the shapes-world perceptual net (hwaksan/weights/perceptual/)
    losses: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(ema_decay=None))


def shapes_autoencoder_data(resolution: int, length: int, seed: int = 0) -> TrainingData:
    """`length` seeded scenes of the whole shapes world (all six shapes, 1-3 objects, black)."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=resolution, shapes=shapes.ALL_SHAPES)
    images, _ = shapes.render_batch(length, seed=seed, config=config)
    info = {"name": "shapes", "shapes_config": config.to_dict(), "length": length, "seed": seed}
    return TrainingData(TensorItems(images, torch.zeros(length, dtype=torch.long)), 3, resolution,
                        info=info)  # fmt: skip


def autoencoder_data(run: AutoencoderRun) -> TrainingData:
    if run.data == "shapes":
        return shapes_autoencoder_data(run.resolution, run.num_images, run.train.seed)
    return training_data(run.data, run.resolution)


def build_autoencoder(run: AutoencoderRun, in_channels: int = 3):
    if run.kind not in KINDS:
        raise HwaksanError(f"unknown autoencoder kind {run.kind!r}; use kl or vq")
    config = AutoencoderConfig(
        in_channels=in_channels, resolution=run.resolution, channels=tuple(run.channels),
        latent_channels=run.latent_channels, num_embeddings=run.num_embeddings,
    )  # fmt: skip
    return KINDS[run.kind](config)


def run_autoencoder(run: AutoencoderRun, data: TrainingData | None = None):
    """Train, save `<out>/model`, and return (the trained autoencoder, the loop's result)."""
    data = data or autoencoder_data(run)
    run.resolution = data.resolution
    torch.manual_seed(run.train.seed)
    model = build_autoencoder(run, data.channels)
    discriminator = None
    if run.discriminator:
        discriminator = PatchDiscriminator(DiscriminatorConfig(in_channels=data.channels))
    perceptual = None
    if run.perceptual and data.channels == 3:
        from hwaksan.nets.perceptual import shapes_perceptual

        perceptual = shapes_perceptual()
    preview = torch.stack([data.dataset[i]["image"] for i in range(8)])
    recipe = AutoencoderRecipe(model, discriminator, perceptual, run.losses, preview)
    result: TrainResult = train(recipe, data.dataset, run.train)
    trained = result.ema_model or result.model
    if result.is_main:
        info = {**data.info, "steps": result.step, "losses": run.losses.to_dict(),
                "batch_size": run.train.batch_size, "lr": run.train.lr}  # fmt: skip
        save_autoencoder(trained, Path(run.train.out_dir) / "model", info)
    return trained.eval(), result
