"""A ControlNet run end to end: a frozen shapes-world text-to-image model, control maps of its
own world (segmentation silhouettes or edges), the ControlNet recipe on the one training loop,
then the adapter folder (`<out>/model`) that `pipe.load_controlnet` reads."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hwaksan.errors import HwaksanError
from hwaksan.train.loop import TrainConfig, TrainResult


@dataclass
class ControlNetRun:
    """What a ControlNet run is made of; `train` holds the loop's settings (steps, lr, out_dir)."""

    base: str = "shapes_t2i_64"  # a shipped name or model folder: a shapes-world text model
    control: str = "segmentation"  # "segmentation" | "edges"
    scenes: int = 8000  # training scenes (each with every phrasing of its caption)
    data_seed: int = 1  # the scene stream (the base trained on seed 0's)
    cond_drop_prob: float = 0.5  # empty prompts (Zhang et al. 2023, sec. 3.3)
    snapshot_every: int = 0  # snapshot the ControlNet every k steps (0: never)
    train: TrainConfig = field(default_factory=TrainConfig)


def control_training_data(pipe, control: str, scenes: int, seed: int, progress: bool = True):
    """`scenes` scenes of the base's own world: latents (encoded once, scaled by the base's
    latent_scale), control maps [N, H, W] bool, and (scene, caption) pairs for every phrasing."""
    from hwaksan.data.shapes import ShapesConfig, control_map, render_batch
    from hwaksan.train.controlnet import ControlData
    from hwaksan.train.latent import encode_images

    shapes_config = pipe.data.get("shapes_config") if pipe.data.get("name") == "shapes" else None
    if shapes_config is None or pipe.autoencoder is None or pipe.text_encoder is None:
        raise HwaksanError(
            "train-controlnet trains on the shapes world: its --base must be a latent "
            "text-to-image model trained on shapes (e.g. shapes_t2i_64)"
        )
    config = ShapesConfig.from_dict(shapes_config)
    images, scene_list = render_batch(scenes, seed=seed, config=config)  # (N, 3, H, W)
    pixels = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).movedim(1, -1).numpy()
    maps = np.stack([control_map(s, control, img) for s, img in zip(scene_list, pixels)])
    latents = encode_images(pipe.autoencoder, images.to(pipe.device), progress=progress)
    pairs = [(i, caption) for i, s in enumerate(scene_list) for caption in s.captions]
    return ControlData(latents.cpu() * pipe.latent_scale, torch.from_numpy(maps), pairs)


def run_controlnet(run: ControlNetRun) -> tuple[TrainResult, Path]:
    """Train a ControlNet for `run.base` on `run.control` maps; the result and its folder."""
    from hwaksan.model_folder import load
    from hwaksan.nets.adapters.controlnet_folder import save_controlnet
    from hwaksan.nets.controlnet import ControlNet
    from hwaksan.train.controlnet import ControlNetRecipe, snapshot_folder
    from hwaksan.train.loop import train

    pipe = load(run.base, device="cpu")
    start = time.perf_counter()
    data = control_training_data(pipe, run.control, run.scenes, run.data_seed, run.train.progress)
    tqdm.write(f"{len(data)} (scene, caption) pairs in {time.perf_counter() - start:.0f} s")
    controlnet = ControlNet.from_unet(pipe.unet)
    info = {"base_model": str(run.base), "control": run.control}

    def snapshot(net, step):
        save_controlnet(snapshot_folder(run.train.out_dir, step), net, step=step, **info)

    recipe = ControlNetRecipe(
        pipe.unet, controlnet, pipe.schedule, pipe.text_encoder,
        prediction_type=pipe.prediction_type, captions=data.captions,
        cond_drop_prob=run.cond_drop_prob, snapshot=snapshot, snapshot_every=run.snapshot_every,
    )  # fmt: skip
    result = train(recipe, data, run.train)
    trained = result.ema_model.controlnet if result.ema_model is not None else controlnet
    folder = save_controlnet(Path(run.train.out_dir) / "model", trained, step=result.step, **info)
    return result, folder
