"""Train a diffusion model end to end from a few choices: data, preset, schedule, target.

What `hwaksan train` and `hwaksan demo` call: build the data, the U-Net and the schedule, run the
loop with the diffusion recipe, and save the model folder (`<out>/model`) that `hk.load` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hwaksan.diffusion.schedule import build_schedule
from hwaksan.errors import HwaksanError
from hwaksan.nets import conditions
from hwaksan.pipeline import Pipeline
from hwaksan.train.concat import RandomMasks
from hwaksan.train.conditioners import ClassLabels, Conditioner, Unconditional
from hwaksan.train.data import TrainingData, training_data
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.grounding import TokenGroundingLoss
from hwaksan.train.latent import LatentData, latent_data
from hwaksan.train.loop import TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything
from hwaksan.train.space import PixelSpace
from hwaksan.train.terms import LossTerm
from hwaksan.train.text import TextConditioned, TextPrompts, text_training_data


@dataclass
class DiffusionRun:
    """The choices that define a diffusion training run (TrainConfig holds the loop's)."""

    data: str = "shapes"  # "shapes" | "digits" | a folder
    resolution: int | None = None  # None: the data's default
    preset: str = "tiny"  # a U-Net preset (hwaksan.nets.PRESETS)
    class_conditional: bool = False
    prediction_type: str = "v_prediction"  # FACTS.md: v + cosine learns fastest at CPU budgets
    schedule: str = "cosine"
    num_train_timesteps: int = 1000
    snr_gamma: float | None = None
    learn_sigma: bool = False
    cond_drop_prob: float = 0.1
    sampler: str = "ddim"  # default for the saved model and the progress grids
    sample_steps: int = 50
    num_samples: int = 16  # images in each progress grid (0: none)
    timestep_spacing: str = "trailing"
    unet_overrides: dict = field(default_factory=dict)
    autoencoder: str | None = None  # a trained autoencoder (name or folder): latent diffusion
    text_encoder: str | None = None  # "mini_clip" | "minilm" | a folder: text-to-image on captions
    init_from: str | None = None  # a trained model (name or folder) whose U-Net weights start this
    train_text_encoder: bool = False  # the diffusion loss trains the text encoder too (mini-CLIP)
    scenes: int | None = None  # shapes scenes: captioned (8,000) or plain (20,000)
    max_objects: int = 1  # the shapes world: 1 to this many objects per scene (1-3)
    grounding_weight: float = 0.0  # text-to-image: weight of the token grounding loss (shapes)
    inpainting: bool = False  # a dedicated inpainting model: random masks, mask + masked x0 read
    train: TrainConfig = field(default_factory=TrainConfig)


def run_diffusion(
    run: DiffusionRun, data: TrainingData | LatentData | None = None
) -> tuple[Pipeline, TrainResult]:
    """Train, save `<out>/model`, and return the pipeline (on the EMA weights) and the result.

    `data`: images (encoded here if `run.autoencoder` is set), or latents encoded beforehand.
    The run's one seeding point comes first, before anything random is made (the text encoder,
    the data, the U-Net): one seed, one run, bit for bit."""
    from hwaksan.nets import build_unet

    seed_everything(run.train.seed)
    text_encoder = _text_encoder(run)
    data = data or _training_data(run, text_encoder is not None)
    latent = data if isinstance(data, LatentData) else _latent_data(run.autoencoder, data)
    space = latent.data if latent else data  # what the U-Net denoises: images or their latents
    if run.class_conditional and space.num_classes is None:
        raise HwaksanError(f"--class-conditional needs labels, and {run.data} has none")
    num_classes = space.num_classes if run.class_conditional else None
    concat = {"concat_channels": 1 + space.channels} if run.inpainting else {}
    unet = build_unet(
        run.preset, in_channels=space.channels, resolution=space.resolution,
        num_classes=num_classes, learn_sigma=run.learn_sigma,
        context_dim=text_encoder.hidden_size if text_encoder else None, **concat,
        **run.unet_overrides,
    )  # fmt: skip
    if run.init_from is not None:
        init_from(unet, run.init_from, text_encoder)
    model = TextConditioned(unet, text_encoder) if run.train_text_encoder else unet
    schedule = build_schedule(run.schedule, run.num_train_timesteps)
    recipe = DiffusionRecipe(
        model, schedule, (space.channels, space.resolution, space.resolution),
        space=latent.space if latent else PixelSpace(),
        conditioner=_conditioner(run, space, text_encoder, num_classes),
        terms=_terms(run, space, text_encoder), prediction_type=run.prediction_type,
        snr_gamma=run.snr_gamma, learn_sigma=run.learn_sigma, sampler=run.sampler,
        sample_steps=run.sample_steps, timestep_spacing=run.timestep_spacing,
        num_samples=run.num_samples,
    )  # fmt: skip
    result = train(recipe, space.dataset, run.train)
    trained, ema = result.model, result.ema_model
    if run.train_text_encoder:  # the folder keeps the (EMA) text encoder the U-Net learned with
        text_encoder = (ema or trained).text_encoder.eval()
        trained, ema = trained.unet, ema.unet if ema is not None else None
    pipe = Pipeline(
        unet=trained, schedule=schedule, prediction_type=run.prediction_type,
        num_classes=num_classes, learn_sigma=run.learn_sigma,
        sampler=run.sampler, steps=run.sample_steps, timestep_spacing=run.timestep_spacing,
        class_names=space.class_names if num_classes else None,
        data={**space.info, "steps": result.step, "preset": run.preset},
        text_encoder=text_encoder, condition=conditions.inpainting() if run.inpainting else None,
        **(latent.pipeline_fields() if latent else dict(image_shape=recipe.image_shape)),
    )  # fmt: skip
    if result.is_main:
        pipe.save(Path(run.train.out_dir) / "model", unet_ema=ema)
    if ema is not None:
        pipe.unet = ema
    pipe.unet.eval()
    return pipe, result


def _conditioner(
    run: DiffusionRun, space: TrainingData, text_encoder, num_classes: int | None
) -> Conditioner:
    """What the model reads: prompts (with a text encoder), class labels, or nothing; with
    `inpainting`, also a random mask and the masked sample (`train.concat.RandomMasks`)."""
    if text_encoder is not None:
        inner = TextPrompts(
            text_encoder, train_text_encoder=run.train_text_encoder,
            cond_drop_prob=run.cond_drop_prob, captions=space.dataset.captions,
        )  # fmt: skip
    elif num_classes is not None:
        inner = ClassLabels(num_classes, run.cond_drop_prob)
    else:
        inner = Unconditional()
    if not run.inpainting:
        return inner
    return RandomMasks(inner, (space.channels, space.resolution, space.resolution))


def _terms(run: DiffusionRun, space: TrainingData, text_encoder) -> list[LossTerm]:
    """The loss terms added to the denoising loss: the token grounding loss when weighted."""
    if text_encoder is None or not run.grounding_weight:
        return []
    object_masks = getattr(space.dataset, "object_masks", None)
    return [TokenGroundingLoss(object_masks, text_encoder.tokenize, run.grounding_weight)]


def init_from(unet: nn.Module, source: str, text_encoder: nn.Module | None = None) -> list[str]:
    """Start `unet` from a trained model's (EMA) U-Net weights: fine-tuning, or growing a model.

    Every tensor of the source must fit this U-Net; tensors only this one has (a new
    context encoder, new attention layers) keep their initialization, which for those parts is
    the identity. Returns the names of the fresh tensors."""
    from hwaksan.model_folder import load

    source_pipe = load(source, device="cpu")
    theirs, ours = type(source_pipe.text_encoder).__name__, type(text_encoder).__name__
    if text_encoder is not None and theirs != ours:
        raise HwaksanError(
            f"--init-from {source}: it reads prompts with {theirs}, this run with {ours}"
        )
    try:
        state = _widen_inputs(source_pipe.unet.state_dict(), unet.state_dict())
        result = unet.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a size mismatch: another width, depth or context size
        first = str(e).strip().splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise HwaksanError(
            f"--init-from {source}: its U-Net does not fit this one ({first})"
        ) from None
    if result.unexpected_keys:
        raise HwaksanError(
            f"--init-from {source}: its U-Net has parts this one lacks, e.g. "
            f"{result.unexpected_keys[0]}; use the same preset, channels and attention"
        )
    if result.missing_keys:
        parts = sorted({k.split(".")[0] for k in result.missing_keys})
        print(f"--init-from {source}: {len(result.missing_keys)} new tensors start fresh "
              f"({', '.join(parts)})")  # fmt: skip
    return list(result.missing_keys)


def _widen_inputs(theirs: dict, ours: dict) -> dict:
    """`theirs` with `conv_in.weight` given zero weights for the extra input channels of ours
    (concatenated conditions): the grown model starts as the source (as Stable Diffusion's
    inpainting U-Net started from the text-to-image one)."""
    key = "conv_in.weight"
    if key not in theirs or key not in ours:
        return theirs
    (out_t, in_t, *k_t), (out_o, in_o, *k_o) = theirs[key].shape, ours[key].shape
    if in_t < in_o and out_t == out_o and k_t == k_o:
        zeros = theirs[key].new_zeros(out_t, in_o - in_t, *k_t)
        theirs = {**theirs, key: torch.cat([theirs[key], zeros], dim=1)}
    return theirs


def _text_encoder(run: DiffusionRun):
    """The text encoder of a text-to-image run (None otherwise)."""
    if run.text_encoder is None:
        if run.train_text_encoder:
            raise HwaksanError("--train-text-encoder needs --text-encoder")
        return None
    if run.class_conditional:
        raise HwaksanError("--text-encoder does not combine with --class-conditional")
    from hwaksan.nets.text import load_text_encoder

    return load_text_encoder(run.text_encoder)


def _training_data(run: DiffusionRun, captioned: bool) -> TrainingData:
    """The run's images: captioned ones (with object masks for the grounding loss) for a text
    model, plain or labelled ones otherwise."""
    if captioned:
        return text_training_data(
            run.data, run.resolution, run.scenes, object_masks=run.grounding_weight > 0
        )
    return training_data(run.data, run.resolution, run.max_objects, run.scenes)


def _latent_data(autoencoder: str | None, data: TrainingData) -> LatentData | None:
    """The data's cached, scaled latents when training in an autoencoder's latent space."""
    if autoencoder is None:
        return None
    return latent_data(autoencoder, data)
