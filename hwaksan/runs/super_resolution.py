"""Train a super-resolution model on shapes scenes: a diffusion model of the high-res image (or
its autoencoder latents) that reads the noise-augmented low-res image by concatenation (SR3,
Saharia et al. 2021; LDM-SR, Rombach et al. 2022, sec. 4.4). `generate(n, image=low_res)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from hwaksan.diffusion.schedule import build_schedule
from hwaksan.nets import conditions
from hwaksan.pipeline import Pipeline
from hwaksan.train.concat import SuperResolution, WithLowRes
from hwaksan.train.data import TensorItems, TrainingData
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.latent import latent_data
from hwaksan.train.loop import TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything
from hwaksan.train.space import PixelSpace


@dataclass
class SuperResRun:
    """The choices of a super-resolution run (TrainConfig holds the loop's)."""

    low_res: int = 16  # px of the low-res input
    resolution: int = 64  # px of the output
    scenes: int = 20_000  # shapes scenes with 1-3 objects
    autoencoder: str | None = "autoencoder_kl"  # None: pixel space
    preset: str = "tiny"
    unet_overrides: dict = field(default_factory=dict)
    noise_levels: int = 10  # conditioning augmentation levels (the U-Net's class embedding)
    max_noise: float = 0.5  # VP sigma of the top level
    prediction_type: str = "v_prediction"
    schedule: str = "cosine"
    sample_steps: int = 25
    train: TrainConfig = field(default_factory=TrainConfig)


def low_res_images(images: torch.Tensor, low_res: int) -> torch.Tensor:
    """[N, C, r, r]: the high-res images box-filtered down (area averaging)."""
    return F.interpolate(images, size=(low_res, low_res), mode="area")


def shapes_scenes(resolution: int, scenes: int, seed: int = 0) -> TrainingData:
    """`scenes` shapes scenes of 1-3 objects at `resolution` px (base shapes and colors)."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=resolution, min_objects=1, max_objects=3)
    images, _ = shapes.render_batch(scenes, seed=seed, config=config)
    info = {"name": "shapes", "shapes_config": config.to_dict(), "length": scenes, "seed": seed}
    return TrainingData(TensorItems(images, torch.zeros(scenes, dtype=torch.long)), 3,
                        resolution, None, None, info)  # fmt: skip


def run_super_resolution(run: SuperResRun) -> tuple[Pipeline, TrainResult]:
    """Train, save `<out>/model` (with its "condition"), and return the pipeline on the EMA."""
    from hwaksan.nets import build_unet

    seed_everything(run.train.seed)
    data = shapes_scenes(run.resolution, run.scenes, run.train.seed)
    low = low_res_images(data.dataset.images, run.low_res)  # (N, 3, r, r)
    latent = latent_data(run.autoencoder, data) if run.autoencoder else None
    space = latent.data if latent else data
    sample_shape = (space.channels, space.resolution, space.resolution)
    condition = conditions.super_resolution(run.low_res, run.noise_levels, run.max_noise)
    conditioner = SuperResolution(condition, space.resolution, data.channels, low[:16])
    unet = build_unet(
        run.preset, in_channels=space.channels, resolution=space.resolution,
        num_classes=run.noise_levels, concat_channels=conditioner.concat_channels,
        **run.unet_overrides,
    )  # fmt: skip
    schedule = build_schedule(run.schedule, 1000)
    recipe = DiffusionRecipe(
        unet, schedule, sample_shape, space=latent.space if latent else PixelSpace(),
        conditioner=conditioner, prediction_type=run.prediction_type,
        sample_steps=run.sample_steps, num_samples=16,
    )  # fmt: skip
    result = train(recipe, WithLowRes(space.dataset, low), run.train)
    fields = latent.pipeline_fields() if latent else dict(image_shape=sample_shape)
    pipe = Pipeline(
        unet=result.model, schedule=schedule, prediction_type=run.prediction_type,
        num_classes=run.noise_levels, steps=run.sample_steps, timestep_spacing="trailing",
        data={**space.info, "steps": result.step, "preset": run.preset}, condition=condition,
        **fields,
    )  # fmt: skip
    if result.is_main:
        pipe.save(Path(run.train.out_dir) / "model", unet_ema=result.ema_model)
    pipe.unet = (result.ema_model or result.model).eval()
    return pipe, result
