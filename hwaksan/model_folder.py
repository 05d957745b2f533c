"""A trained model as a folder: `config.json` + one safetensors file per component.

`config.json` says what the model is: the denoiser's class and config, noise schedule, the
pipeline's fields (`FIELDS`: prediction type, default sampler, data and class names, ...), and
the optional components under "modules". The weights are `unet.safetensors`,
`unet_ema.safetensors`, `autoencoder.safetensors`, ... Loading reads JSON and safetensors only —
nothing is ever unpickled.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from hwaksan.components import (
    build_component,
    component_spec,
    has_weights,
    load_weights,
    read_folder,
    write_folder,
)
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.fields import check_fields
from hwaksan.guidance.layout import LAYOUT_SCALE
from hwaksan.interop.detect import check_not_single_model, is_diffusers_folder
from hwaksan.model_fields import FIELD_CHECKS, check_fits_unet, check_schedule
from hwaksan.pipeline import Pipeline
from hwaksan.registry import resolve

MODEL_KIND = "hwaksan.diffusion"
FORMAT_VERSION = 1

OPTIONAL_COMPONENTS = ("autoencoder", "text_encoder", "classifier", "layout_encoder")
REQUIRED = object()  # a field every folder has
# the Pipeline's plain fields, written and read here only: name -> the value a folder written
# before the field existed means
FIELDS: dict[str, object] = {
    "prediction_type": REQUIRED,
    "image_shape": REQUIRED,
    "sample_shape": None,  # None: image_shape
    "latent_scale": 1.0,
    "num_classes": None,
    "learn_sigma": False,
    "sampler": "ddim",
    "steps": 50,
    "timestep_spacing": "leading",
    "class_names": None,
    "layout_scale": LAYOUT_SCALE,
    "condition": None,  # an image read by concatenation (`nets.conditions`); None: none
    "data": {},
}


def pipeline_config(pipe: Pipeline) -> dict:
    """What `config.json` says of `pipe`: its denoiser, schedule, fields and optional modules."""
    unet = component_spec(pipe.unet)
    config = {"model_kind": MODEL_KIND, "format_version": FORMAT_VERSION}
    config.update(unet_class=unet["class"], unet=unet["config"])
    config["schedule"] = pipe.schedule.to_config()
    config.update({name: getattr(pipe, name) for name in FIELDS})
    modules = {name: getattr(pipe, name) for name in OPTIONAL_COMPONENTS}
    config["modules"] = {n: component_spec(m) for n, m in modules.items() if m is not None}
    return config


def save_pipeline(
    pipe: Pipeline, path: str | Path, unet_ema: nn.Module | None = None, dtype=torch.float32
) -> Path:
    """`config.json` + one `<component>.safetensors` per network in `path` (floating weights in
    `dtype`), written atomically."""
    source = pipe.data.get("diffusers_folder") if isinstance(pipe.data, dict) else None
    if source is not None:
        raise HwaksanError(f"this model runs diffusers' networks from {source}; that folder is it")
    config = pipeline_config(pipe)
    weights = {"unet": pipe.unet, "unet_ema": unet_ema}
    for name in config["modules"]:
        module = getattr(pipe, name)
        if has_weights(module):
            weights[name] = module
    weights = {name: module for name, module in weights.items() if module is not None}
    config["components"] = list(weights)
    return write_folder(path, config, weights, dtype)


def load(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    use_ema: bool = True,
    classifier: str | Path | nn.Module | None = None,
    controlnet: str | Path | nn.Module | None = None,
) -> Pipeline:
    """A `Pipeline` from a shipped name ("digits", "shapes") or a model folder.

    Uses the EMA weights when the folder has them (`use_ema=False` for the raw ones).
    `classifier` (a noise-aware classifier, or its shipped name or folder) replaces the folder's
    own, for classifier guidance. `controlnet` (a ControlNet adapter folder, or a `ControlNet`)
    is attached (`pipe.load_controlnet`). The denoiser may be any class in `components.CLASSES`.
    A diffusers pipeline folder (`model_index.json`) is read by `hwaksan.interop`.
    """
    folder = resolve(name_or_path)
    if is_diffusers_folder(folder):
        pipe = _load_diffusers(folder, device, classifier)
    else:
        pipe = _load_folder(folder, device, use_ema, classifier)
    if controlnet is not None:
        pipe.load_controlnet(controlnet)
    return pipe


def _load_folder(folder: Path, device, use_ema: bool, classifier) -> Pipeline:
    """A hwaksan model folder's pipeline."""
    check_not_single_model(folder)
    config = read_config(folder)
    unet = build_component({"class": config.get("unet_class", "UNet"), "config": config["unet"]},
                           folder)  # fmt: skip
    component = "unet_ema" if use_ema and "unet_ema" in config.get("components", []) else "unet"
    check_fits_unet(config, getattr(unet, "config", None), str(folder / "config.json"))
    load_weights(unet, folder / f"{component}.safetensors", folder)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    modules = _load_modules(config, folder, device)
    if classifier is not None:
        from hwaksan.nets.classifier import load_classifier

        is_module = isinstance(classifier, nn.Module)
        modules["classifier"] = classifier if is_module else load_classifier(classifier, device)
    fields = {name: config.get(name, copy.deepcopy(default)) for name, default in FIELDS.items()}
    return Pipeline(
        unet=unet.to(device).eval().requires_grad_(False),
        schedule=NoiseSchedule.from_config(config["schedule"]),
        **fields,
        **modules,
    )


def _load_diffusers(folder: Path, device, classifier) -> Pipeline:
    """A diffusers folder's pipeline (its networks wrapped, `hwaksan.interop`)."""
    from hwaksan.interop.diffusers_folder import load_diffusers

    if classifier is not None and not isinstance(classifier, nn.Module):
        from hwaksan.nets.classifier import load_classifier

        classifier = load_classifier(classifier, device)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return load_diffusers(folder, device, classifier)


def _load_modules(config: dict, folder: Path, device: torch.device) -> dict[str, nn.Module]:
    """The optional components a folder names, built, loaded, frozen and on `device`."""
    modules = {}
    for name, spec in config.get("modules", {}).items():
        module = build_component(spec, folder)
        if has_weights(module):
            load_weights(module, folder / f"{name}.safetensors", folder)
        modules[name] = module.to(device).eval().requires_grad_(False)
    return modules


def read_config(folder: Path) -> dict:
    """config.json of a model folder: one of ours, of a version we read, and every field of the
    type and range it must have (one-line errors naming the file and the field)."""
    config = read_folder(folder, MODEL_KIND, FORMAT_VERSION)
    where = str(folder / "config.json")
    required = ["unet", "schedule", *(k for k, v in FIELDS.items() if v is REQUIRED)]
    missing = [k for k in required if k not in config]
    if missing:
        raise HwaksanError(f"{where} lacks {', '.join(missing)}")
    check_fields(config, FIELD_CHECKS, where)
    check_schedule(config["schedule"], f"{where} schedule")
    for name in config.get("modules", {}):
        if name not in OPTIONAL_COMPONENTS:
            raise HwaksanError(f"{where} names an unknown component {name!r} in 'modules'")
    return config
