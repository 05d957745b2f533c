"""Train a layout-to-image model on shapes scenes with their boxes (`train.layout`): the
U-Net (in an autoencoder's latents, or on pixels) and the layout encoder together; the folder
keeps the (EMA) encoder as its `layout_encoder`. `generate(n, layout=[(label, box), ...])`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from hwaksan.diffusion.schedule import build_schedule
from hwaksan.nets.layout import LayoutEncoder, LayoutEncoderConfig
from hwaksan.pipeline import Pipeline
from hwaksan.train.data import TensorItems, TrainingData
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.latent import latent_data
from hwaksan.train.layout import LayoutConditioned, SceneLayouts, WithLayouts, shapes_labels
from hwaksan.train.loop import TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything
from hwaksan.train.space import PixelSpace


@dataclass
class LayoutRun:
    """The choices of a layout-to-image run (TrainConfig holds the loop's)."""

    resolution: int = 64
    scenes: int = 20_000  # shapes scenes of 1-3 objects, with their boxes
    autoencoder: str | None = "autoencoder_kl"  # None: pixel space
    preset: str = "tiny"
    unet_overrides: dict = field(default_factory=dict)
    encoder: dict = field(default_factory=dict)  # LayoutEncoderConfig overrides
    init_from: str | None = None  # a trained model whose U-Net weights start this one's
    cond_drop_prob: float = 0.1
    prediction_type: str = "v_prediction"
    sample_steps: int = 25
    train: TrainConfig = field(default_factory=TrainConfig)


def run_layout(run: LayoutRun) -> tuple[Pipeline, TrainResult]:
    """Train, save `<out>/model` (with its layout encoder) and return the pipeline on the EMA."""
    from hwaksan.data import shapes
    from hwaksan.nets import build_unet

    seed_everything(run.train.seed)
    config = shapes.ShapesConfig(resolution=run.resolution, min_objects=1, max_objects=3)
    images, scenes = shapes.render_batch(run.scenes, seed=run.train.seed, config=config)
    info = {"name": "shapes", "shapes_config": config.to_dict(), "length": run.scenes}
    data = TrainingData(TensorItems(images, torch.zeros(run.scenes, dtype=torch.long)), 3,
                        run.resolution, None, None, info)  # fmt: skip
    latent = latent_data(run.autoencoder, data) if run.autoencoder else None
    space = latent.data if latent else data
    encoder = LayoutEncoder(LayoutEncoderConfig(labels=shapes_labels(), **run.encoder))
    dataset = WithLayouts(space.dataset, scenes, encoder.config)
    unet = build_unet(run.preset, in_channels=space.channels, resolution=space.resolution,
                      context_dim=encoder.hidden_size, **run.unet_overrides)  # fmt: skip
    if run.init_from is not None:  # e.g. a text-to-image model: it already draws the objects
        from hwaksan.runs.diffusion import init_from

        init_from(unet, run.init_from)
    schedule = build_schedule("cosine", 1000)
    recipe = DiffusionRecipe(
        LayoutConditioned(unet, encoder), schedule,
        (space.channels, space.resolution, space.resolution),
        space=latent.space if latent else PixelSpace(),
        conditioner=SceneLayouts((dataset.tokens[:16], dataset.mask[:16]), run.cond_drop_prob),
        prediction_type=run.prediction_type, sample_steps=run.sample_steps, num_samples=16,
    )  # fmt: skip
    result = train(recipe, dataset, run.train)
    trained, ema = result.model, result.ema_model or result.model
    fields = latent.pipeline_fields() if latent else dict(image_shape=recipe.image_shape)
    pipe = Pipeline(
        unet=trained.unet, schedule=schedule, prediction_type=run.prediction_type,
        steps=run.sample_steps, timestep_spacing="trailing", layout_encoder=ema.layout_encoder,
        data={**space.info, "steps": result.step, "preset": run.preset}, **fields,
    )  # fmt: skip
    if result.is_main:
        pipe.save(Path(run.train.out_dir) / "model", unet_ema=ema.unet)
    pipe.unet = ema.unet.eval()
    pipe.layout_encoder = ema.layout_encoder.eval()
    return pipe, result
