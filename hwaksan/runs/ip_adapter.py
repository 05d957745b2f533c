"""Train an IP-Adapter (Ye et al. 2023) on a trained text-to-image model end to end: what
`hwaksan train-ip-adapter` calls. Load the frozen base and the mini-CLIP image tower, render and
encode the shapes-world data once (latents, captions, reference embeddings), train the adapter
alone, save it as an adapter folder (`<out>/model`) that `pipe.load_ip_adapter` reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hwaksan.data.shapes import ShapesConfig, render_batch
from hwaksan.data.shapes.captions import position_phrase
from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.ip_adapter import IPAdapter
from hwaksan.nets.adapters.ip_adapter_folder import save_ip_adapter
from hwaksan.pipeline import Pipeline
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.ip_adapter import (
    ImagePrompts,
    IPAdapterModel,
    ReferencedImages,
    reference_embeds,
    reference_scenes,
)
from hwaksan.train.latent import encode_images
from hwaksan.train.loop import TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything
from hwaksan.train.space import LatentSpace, PixelSpace


@dataclass
class IPAdapterRun:
    """The choices of an IP-Adapter training run (TrainConfig holds the loop's)."""

    model: str = "shapes_t2i_64"  # the frozen base: a shipped name or a folder
    scenes: int = 10_000  # shapes-world scenes rendered (each with every phrasing of its caption)
    num_tokens: int = 4  # image tokens (the paper's 4)
    reference: str = "moved"  # "moved" | "same" (train.ip_adapter)
    position_captions: float = 0.5  # share of captions cut to their position or to ""
    drop_prob: float = 0.05  # text, image and both each dropped this often (the paper's 0.05)
    data_seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)


def run_ip_adapter(run: IPAdapterRun) -> tuple[IPAdapter, TrainResult]:
    """Train, save `<out>/model` (the EMA weights when there are some), return that adapter."""
    from hwaksan.model_folder import load
    from hwaksan.nets.text.mini_clip import load_mini_clip

    seed_everything(run.train.seed)  # before anything random is made: one seed, one run
    pipe = load(run.model)
    if pipe.text_encoder is None or pipe.data.get("name") != "shapes":
        raise HwaksanError(f"{run.model} is not a text-to-image model of the shapes world")
    clip = load_mini_clip("mini_clip")
    dataset, samples = _data(pipe, clip, run)
    adapter = IPAdapter.for_unet(pipe.unet, clip.config.embed_dim, run.num_tokens)
    model = IPAdapterModel(pipe.unet, adapter)
    conditioner = ImagePrompts(
        pipe.text_encoder, samples, drop_prob=run.drop_prob,
        position_captions=run.position_captions,
        captions=[*dataset.captions, *set(dataset.position_captions)],
    )  # fmt: skip
    space = PixelSpace() if pipe.autoencoder is None else LatentSpace(
        pipe.autoencoder, pipe.latent_scale)  # fmt: skip
    recipe = DiffusionRecipe(
        model, pipe.schedule, pipe.sample_shape, space=space, conditioner=conditioner,
        prediction_type=pipe.prediction_type, sampler=pipe.sampler, sample_steps=pipe.steps,
        timestep_spacing=pipe.timestep_spacing, num_samples=8,
    )  # fmt: skip
    recipe.trainable = adapter
    result = train(recipe, dataset, run.train)
    trained = (result.ema_model or result.model).adapter
    if result.is_main:
        info = {
            "base": run.model, "scenes": run.scenes, "reference": run.reference,
            "position_captions": run.position_captions, "drop_prob": run.drop_prob,
            "data_seed": run.data_seed, "steps": result.step,
            "train": {k: v for k, v in asdict(run.train).items() if k not in ("resume", "out_dir")},
        }  # fmt: skip
        save_ip_adapter(Path(run.train.out_dir) / "model", trained, pipe.unet, info=info)
    return trained, result


def _data(pipe: Pipeline, clip, run: IPAdapterRun) -> tuple[ReferencedImages, torch.Tensor]:
    """The training set (latents or pixels, captions, reference embeddings) from the base's own
    shapes config, and 4 held-out references for the progress grids."""
    config = ShapesConfig.from_dict(pipe.data["shapes_config"])
    images, scenes = render_batch(run.scenes, seed=run.data_seed, config=config)
    embeds = reference_embeds(clip, reference_scenes(scenes, run.reference, run.data_seed))
    if pipe.autoencoder is not None:
        images = encode_images(pipe.autoencoder, images, progress=run.train.progress)
        images = images * pipe.latent_scale  # (N, c, h, w) scaled latents
    pairs = [(i, caption) for i, scene in enumerate(scenes) for caption in scene.captions]
    positions = [position_phrase(s.objects[0].position) if len(s.objects) == 1 else ""
                 for s in scenes]  # fmt: skip
    _, held_out = render_batch(4, seed=run.data_seed + 1, config=config)
    samples = reference_embeds(clip, held_out)  # (4, E)
    return ReferencedImages(images, pairs, embeds, positions), samples
