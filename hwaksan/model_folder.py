"""A trained model as a folder: `config.json` + one safetensors file per component.

`config.json` says what the model is: network config, noise schedule, prediction type, default
sampler, data and class names, and the optional components under "modules". The weights are
`unet.safetensors`, `unet_ema.safetensors`, `autoencoder.safetensors`, ... Loading reads JSON and
safetensors only — nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from hwaksan.components import (
    build_component,
    component_spec,
    has_weights,
    load_weights,
    model_config,
    read_folder_config,
    save_weights,
)
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import LAYOUT_SCALE
from hwaksan.pipeline import Pipeline
from hwaksan.registry import resolve

MODEL_KIND = "hwaksan.diffusion"
FORMAT_VERSION = 1

OPTIONAL_COMPONENTS = ("autoencoder", "text_encoder", "classifier")


def pipeline_config(pipe: Pipeline) -> dict:
    config = {
        "model_kind": MODEL_KIND,
        "format_version": FORMAT_VERSION,
        "unet_class": type(pipe.unet).__name__,
        "unet": model_config(pipe.unet),
        "schedule": pipe.schedule.to_config(),
        "prediction_type": pipe.prediction_type,
        "image_shape": list(pipe.image_shape),
        "sample_shape": list(pipe.sample_shape),
        "latent_scale": pipe.latent_scale,
        "num_classes": pipe.num_classes,
        "learn_sigma": pipe.learn_sigma,
        "sampler": pipe.sampler,
        "steps": pipe.steps,
        "timestep_spacing": pipe.timestep_spacing,
        "class_names": pipe.class_names,
        "layout_scale": pipe.layout_scale,
        "data": pipe.data,
    }
    modules = {name: getattr(pipe, name) for name in OPTIONAL_COMPONENTS}
    config["modules"] = {n: component_spec(m) for n, m in modules.items() if m is not None}
    return config


def save_pipeline(
    pipe: Pipeline, path: str | Path, unet_ema: nn.Module | None = None, dtype=torch.float32
) -> Path:
    """`config.json` + one `<component>.safetensors` per network in `path` (floating weights in
    `dtype`), written atomically."""
    path = Path(path)
    config = pipeline_config(pipe)
    if config["unet"] is None:
        raise HwaksanError(
            f"{type(pipe.unet).__name__} has no config.to_dict(); it cannot be saved"
        )
    weights = {"unet": pipe.unet, "unet_ema": unet_ema}
    for name in config["modules"]:
        module = getattr(pipe, name)
        if has_weights(module):
            weights[name] = module
    weights = {name: module for name, module in weights.items() if module is not None}
    config["components"] = list(weights)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in weights.items():
        save_weights(module, tmp / f"{name}.safetensors", dtype)
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    for file in tmp.iterdir():  # safetensors writes owner-only files; a model is for everyone
        file.chmod(0o644)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def load(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    use_ema: bool = True,
    classifier: str | Path | nn.Module | None = None,
) -> Pipeline:
    """A `Pipeline` from a shipped name ("digits", "shapes") or a model folder.

    Uses the EMA weights when the folder has them (`use_ema=False` for the raw ones).
    `classifier` (a noise-aware classifier, or its shipped name or folder) replaces the folder's
    own, for classifier guidance.
    """
    folder = resolve(name_or_path)
    config = read_config(folder)
    if config.get("unet_class", "UNet") != "UNet":
        raise HwaksanError(f"{folder}: unknown network class {config['unet_class']!r}")
    unet = build_component({"class": "UNet", "config": config["unet"]}, folder)
    component = "unet_ema" if use_ema and "unet_ema" in config.get("components", []) else "unet"
    load_weights(unet, folder / f"{component}.safetensors", folder)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    modules = {}
    for name, spec in config.get("modules", {}).items():
        if name not in OPTIONAL_COMPONENTS:
            raise HwaksanError(f"{folder}/config.json names an unknown component {name!r}")
        module = build_component(spec, folder)
        if has_weights(module):
            load_weights(module, folder / f"{name}.safetensors", folder)
        modules[name] = module.to(device).eval().requires_grad_(False)
    if classifier is not None:
        from hwaksan.nets.classifier import load_classifier

        is_module = isinstance(classifier, nn.Module)
        modules["classifier"] = classifier if is_module else load_classifier(classifier, device)
    return Pipeline(
        unet=unet.to(device).eval().requires_grad_(False),
        schedule=NoiseSchedule.from_config(config["schedule"]),
        prediction_type=config["prediction_type"],
        image_shape=tuple(config["image_shape"]),
        sample_shape=tuple(config.get("sample_shape") or config["image_shape"]),
        latent_scale=config.get("latent_scale", 1.0),
        num_classes=config.get("num_classes"),
        learn_sigma=config.get("learn_sigma", False),
        sampler=config.get("sampler", "ddim"),
        steps=config.get("steps", 50),
        timestep_spacing=config.get("timestep_spacing", "leading"),
        class_names=config.get("class_names"),
        layout_scale=config.get("layout_scale", LAYOUT_SCALE),
        data=config.get("data", {}),
        **modules,
    )


# what other hwaksan folders hold, and how to load them
_OTHER_KINDS = {
    "hwaksan.classifier": (
        "a noise-aware classifier",
        "load it with hk.load_classifier, or guide a model with hk.load(model, classifier=...)",
    ),
    "hwaksan.autoencoder": ("an autoencoder", "load it with hk.load_autoencoder"),
    "hwaksan.mini_clip": ("a mini-CLIP", "load it with hk.load_text_encoder"),
}


def _saved_kind(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("model_kind")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None


def read_config(folder: Path) -> dict:
    """config.json of a model folder, checked to be one of ours and of a version we read."""
    path = folder / "config.json"
    try:
        config = read_folder_config(folder, MODEL_KIND, "a hwaksan model", FORMAT_VERSION)
    except HwaksanError as e:
        kind = _saved_kind(path)
        if kind in _OTHER_KINDS:
            what, how = _OTHER_KINDS[kind]
            raise HwaksanError(f"{folder} holds {what}, not a diffusion model; {how}") from e
        raise
    missing = [k for k in ("unet", "schedule", "prediction_type", "image_shape") if k not in config]
    if missing:
        raise HwaksanError(f"{path} lacks {', '.join(missing)}")
    return config
