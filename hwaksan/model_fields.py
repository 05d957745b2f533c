"""The type and range of every field a model folder's config.json holds, for `read_config`.

Kept beside `model_folder.FIELDS`: a new pipeline field gets one line in each.
"""

from __future__ import annotations

import dataclasses
import typing

from hwaksan.diffusion.parameterization import PREDICTION_TYPES
from hwaksan.diffusion.schedule import ScheduleConfig
from hwaksan.errors import HwaksanError
from hwaksan.fields import check_fields, check_typed, is_int, is_number, is_shape
from hwaksan.nets.conditions import is_condition
from hwaksan.sampling.registry import sampler_names
from hwaksan.sampling.timesteps import TIMESTEP_SPACINGS

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")


def _one_of(choices) -> tuple:
    return (lambda v: v in choices, "one of " + ", ".join(map(str, choices)))


def _sampler(value) -> bool:
    return value in sampler_names()


# field -> (check, what it must be)
FIELD_CHECKS: dict[str, tuple] = {
    "unet_class": (lambda v: isinstance(v, str), "a network class name"),
    "unet": (lambda v: isinstance(v, dict), "an object (the network's config)"),
    "schedule": (lambda v: isinstance(v, dict), "an object (the noise schedule)"),
    "modules": (lambda v: isinstance(v, dict), 'an object like {"autoencoder": {...}}'),
    "components": (
        lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
        "a list of component names",
    ),
    "prediction_type": _one_of(PREDICTION_TYPES),
    "image_shape": (is_shape, "a list of three positive whole numbers [C, H, W]"),
    "sample_shape": (lambda v: v is None or is_shape(v), "null or [C, H, W]"),
    "latent_scale": (lambda v: is_number(v, 1e-8, 1e8), "a finite number > 0"),
    "num_classes": (lambda v: v is None or is_int(v, 1), "null or a whole number >= 1"),
    "learn_sigma": (lambda v: isinstance(v, bool), "true or false"),
    "sampler": (_sampler, "a sampler name (" + ", ".join(sampler_names()) + ")"),
    "steps": (lambda v: is_int(v, 1, 100_000), "a whole number >= 1"),
    "timestep_spacing": _one_of(TIMESTEP_SPACINGS),
    "class_names": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
        "null or a list of strings",
    ),
    "layout_scale": (lambda v: v is None or is_number(v, 0), "a finite number >= 0"),
    "data": (lambda v: isinstance(v, dict), "an object"),
    "condition": (
        is_condition,
        "null or a condition (nets.conditions: super_resolution, inpainting)",
    ),
}

_SCHEDULE_RANGES: dict[str, tuple] = {
    "num_train_timesteps": (lambda v: is_int(v, 2, 100_000), "a whole number from 2 to 100000"),
    "beta_schedule": _one_of(BETA_SCHEDULES),
    "beta_start": (lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "beta_end": (lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)"),
}


def check_schedule(schedule: dict, where: str) -> None:
    """The noise schedule's keys known, of their types, in range, and beta_start <= beta_end."""
    hints = typing.get_type_hints(ScheduleConfig)
    unknown = sorted(set(schedule) - set(hints))
    if unknown:
        raise HwaksanError(f"{where}: unknown keys {unknown}; known: {sorted(hints)}")
    check_typed(schedule, hints, where)
    check_fields(schedule, _SCHEDULE_RANGES, where)
    defaults = dataclasses.asdict(ScheduleConfig())
    start = schedule.get("beta_start", defaults["beta_start"])
    if start > schedule.get("beta_end", defaults["beta_end"]):
        raise HwaksanError(f"{where}: beta_start must not be larger than beta_end")


def check_fits_unet(config: dict, unet_config: object, where: str) -> None:
    """The pipeline's fields agree with the denoiser's own config (classes, variance, channels):
    a folder that disagrees would fail inside the first sampling step."""
    shape = config.get("sample_shape") or config["image_shape"]
    pairs = [
        ("num_classes", config.get("num_classes"), "num_classes"),
        ("learn_sigma", config.get("learn_sigma", False), "learn_sigma"),
        ("sample_shape" if config.get("sample_shape") else "image_shape", shape[0], "in_channels"),
    ]
    for field, value, unet_field in pairs:
        own = getattr(unet_config, unet_field, value)
        if own != value:
            raise HwaksanError(f"{where}: {field!r} says {value!r} but the unet's {unet_field} "
                               f"is {own!r}")  # fmt: skip
