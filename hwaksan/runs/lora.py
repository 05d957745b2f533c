"""Train a LoRA on a frozen text-to-image model (Hu et al. 2021): the base's U-Net (and, when
asked, its text encoder) gets low-rank layers by name, only they train (`Recipe.trainable`), and
the result is `<out>/lora/pytorch_lora_weights.safetensors`, loadable with `load_lora_weights`.

Data: the shapes world as the base saw it (its resolution and objects), optionally with the
watermark look, or a folder of captioned images; encoded once by the base's own autoencoder at
the base's `latent_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters import TARGET_MODULES, inject_lora, lora_parameters, lora_target_names
from hwaksan.pipeline import Pipeline
from hwaksan.train.data import TrainingData
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.latent import latent_data
from hwaksan.train.loop import TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything
from hwaksan.train.space import LatentSpace, PixelSpace
from hwaksan.train.text import TextConditioned, TextPrompts, shapes_text_data, text_training_data


@dataclass
class LoRARun:
    """The choices of a LoRA training run (TrainConfig holds the loop's)."""

    base: str = "shapes_t2i_64"  # a text-to-image model: shipped name or folder
    data: str = "shapes"  # "shapes" (the base's world) or a folder with metadata.jsonl
    watermark: bool = False  # shapes: stamp the watermark look on every image
    scenes: int = 4000  # shapes: scenes to render
    rank: int = 4
    lora_alpha: float | None = None  # None: the rank (scale 1)
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = TARGET_MODULES  # U-Net layers by (last) name
    text_encoder_modules: tuple[str, ...] = ()  # text-encoder layers to adapt too (mini-CLIP)
    cond_drop_prob: float = 0.1
    num_samples: int = 8  # images in each progress grid
    train: TrainConfig = field(default_factory=TrainConfig)


def run_lora(run: LoRARun, data: TrainingData | None = None) -> tuple[Pipeline, TrainResult]:
    """Train, save `<out>/lora`, and return the base pipeline carrying the (EMA) LoRA."""
    from hwaksan.model_folder import load

    seed_everything(run.train.seed)
    pipe = load(run.base, device="cpu")
    if pipe.text_encoder is None:
        raise HwaksanError(f"train-lora adapts a text-to-image model; {run.base} reads no prompts")
    data = data or _data(run, pipe)
    latent = None
    if pipe.autoencoder is not None:
        latent = latent_data(pipe.autoencoder, data, latent_scale=pipe.latent_scale)
        data = latent.data
    if (data.channels, data.resolution, data.resolution) != tuple(pipe.sample_shape):
        raise HwaksanError(
            f"the data are {data.resolution} px; {run.base} makes {pipe.image_shape[1]} px images"
        )
    model = _attach(run, pipe)
    recipe = DiffusionRecipe(
        model, pipe.schedule, tuple(pipe.sample_shape),
        space=LatentSpace(pipe.autoencoder, pipe.latent_scale) if latent else PixelSpace(),
        conditioner=TextPrompts(
            pipe.text_encoder, train_text_encoder=isinstance(model, TextConditioned),
            cond_drop_prob=run.cond_drop_prob, captions=data.dataset.captions,
        ),
        prediction_type=pipe.prediction_type, sampler=pipe.sampler, sample_steps=pipe.steps,
        timestep_spacing=pipe.timestep_spacing, num_samples=run.num_samples,
    )  # fmt: skip
    recipe.trainable = lora_parameters(model)
    result = train(recipe, data.dataset, run.train)
    trained = (result.ema_model or result.model).eval()
    if isinstance(trained, TextConditioned):
        pipe.unet, pipe.text_encoder = trained.unet, trained.text_encoder.requires_grad_(False)
    else:
        pipe.unet = trained
    pipe.unet.requires_grad_(False)
    if result.is_main:
        pipe.save_lora_weights(Path(run.train.out_dir) / "lora", base=_base_info(run, data))
    return pipe, result


def _attach(run: LoRARun, pipe: Pipeline) -> nn.Module:
    """LoRA layers on the named U-Net (and text-encoder) layers; the module the recipe runs."""
    alpha = run.lora_alpha if run.lora_alpha is not None else float(run.rank)
    names = lora_target_names(pipe.unet, run.target_modules)
    if not names:
        raise HwaksanError(f"no U-Net layer is named any of {list(run.target_modules)}")
    inject_lora(pipe.unet, names, run.rank, alpha, "default", run.lora_dropout)
    if not run.text_encoder_modules:
        return pipe.unet
    text_names = lora_target_names(pipe.text_encoder, run.text_encoder_modules)
    if not text_names:
        raise HwaksanError(f"no text-encoder layer is named any of {run.text_encoder_modules}")
    inject_lora(pipe.text_encoder, text_names, run.rank, alpha, "default", run.lora_dropout)
    return TextConditioned(pipe.unet, pipe.text_encoder)


def _data(run: LoRARun, pipe: Pipeline) -> TrainingData:
    """Captioned images at the base's resolution: its shapes world (with the look) or a folder."""
    resolution = pipe.image_shape[1]
    if run.data == "shapes":
        world = (pipe.data or {}).get("shapes_config", {})
        return shapes_text_data(resolution, length=run.scenes, seed=1,
                                max_objects=world.get("max_objects", 2),
                                watermark=run.watermark)  # fmt: skip
    if run.watermark:
        raise HwaksanError("--watermark draws the look on the shapes world: use --data shapes")
    return text_training_data(run.data, resolution)


def _base_info(run: LoRARun, data: TrainingData) -> dict:
    return {"base": run.base, "data": data.info, "steps": run.train.steps}
