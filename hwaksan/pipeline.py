"""A trained model as a folder, and the `Pipeline` that generates images from it.

Folder layout: `config.json` (what the model is: network config, noise schedule, prediction
type, default sampler, data and class names) and one safetensors file per component
(`unet.safetensors`, `unet_ema.safetensors`). Loading reads JSON and safetensors only — nothing
is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.registry import resolve
from hwaksan.train.grid import to_pil

MODEL_KIND = "hwaksan.diffusion"
FORMAT_VERSION = 1


@dataclass
class Pipeline:
    """A denoising network, its schedule and how to sample it: `generate(n, ...)` makes images."""

    unet: nn.Module
    schedule: NoiseSchedule
    prediction_type: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int | None = None
    learn_sigma: bool = False
    sampler: str = "ddim"
    steps: int = 50
    timestep_spacing: str = "trailing"
    class_names: list[str] | None = None
    data: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        n: int,
        sampler: str | None = None,
        steps: int | None = None,
        seed: int = 0,
        class_labels: list[int] | torch.Tensor | None = None,
        guidance_scale: float | None = None,
        eta: float = 0.0,
        progress: bool = False,
        output_type: str = "pil",
        batch_size: int = 64,
    ) -> list[Image.Image] | torch.Tensor:
        """n images from seed `seed` (same seed, same images whatever `batch_size`).

        `class_labels` (one per image) for class-conditional models; `guidance_scale` > 1 mixes in
        the unconditional prediction (classifier-free guidance, Ho & Salimans 2022).
        `output_type` "pil" gives PIL images, "pt" a [n, C, H, W] tensor in [-1, 1].
        """
        from hwaksan.sampling import sample

        labels = self._labels(n, class_labels)
        model = self._denoiser(guidance_scale)
        generator = torch.Generator().manual_seed(seed)
        x_T = torch.randn((n, *self.image_shape), generator=generator)
        chunks = []
        try:
            self._check_sampler_args(sampler or self.sampler, steps or self.steps, eta)
        except ValueError as e:  # a bad sampler, step count or eta: the user's input
            raise HwaksanError(str(e)) from e
        for start in range(0, n, batch_size):
            x = x_T[start : start + batch_size].to(self.device)
            cond = None if labels is None else {"class_labels": labels[start : start + batch_size]}
            chunks.append(
                sample(
                    model, tuple(x.shape), schedule=self.schedule, sampler=sampler or self.sampler,
                    steps=steps or self.steps, eta=eta, prediction_type=self.prediction_type,
                    timestep_spacing=self.timestep_spacing, generator=generator, x_T=x, cond=cond,
                    progress=progress,
                ).clamp(-1, 1).cpu()
            )  # fmt: skip
        images = torch.cat(chunks)
        if output_type == "pt":
            return images
        if output_type == "pil":
            return to_pil(images)
        raise HwaksanError(f"unknown output_type {output_type!r}; use 'pil' or 'pt'")

    def _check_sampler_args(self, sampler: str, steps: int, eta: float) -> None:
        """The samplers' own argument checks, before any work is done."""
        from hwaksan.sampling.sample import check_sample_args

        check_sample_args(
            sampler, steps, self.timestep_spacing, self.schedule,
            eta=eta, prediction_type=self.prediction_type,
        )  # fmt: skip

    def _labels(self, n: int, class_labels) -> torch.Tensor | None:
        """Class labels as a LongTensor on the model's device, checked against num_classes."""
        if self.num_classes is None:
            if class_labels is not None:
                raise HwaksanError("this model is unconditional; it takes no class labels")
            return None
        if class_labels is None:  # the null class: unconditional samples
            return torch.full((n,), self.num_classes, device=self.device)
        labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        if len(labels) == 1:
            labels = labels.expand(n)
        if len(labels) != n or bool(((labels < 0) | (labels > self.num_classes)).any()):
            raise HwaksanError(
                f"class_labels must be {n} ids in 0..{self.num_classes - 1} "
                f"({self.num_classes} = unconditional)"
            )
        return labels.to(self.device)

    def _denoiser(self, guidance_scale: float | None):
        """The network as the sampler calls it: mean half only, guided if asked."""
        from hwaksan.sampling.denoiser import mean_prediction

        model = mean_prediction(self.unet, self.image_shape[0])
        if guidance_scale is None or guidance_scale == 1.0:
            return model
        if self.num_classes is None:
            raise HwaksanError("guidance_scale needs a class-conditional model")
        return _classifier_free_guidance(model, guidance_scale, self.num_classes)

    def save(
        self, path: str | Path, unet_ema: nn.Module | None = None, dtype=torch.float32
    ) -> Path:
        """Write the model folder (atomically: a temporary folder renamed into place)."""
        return save_pipeline(self, path, unet_ema, dtype)


def _classifier_free_guidance(model, guidance_scale: float, null_class: int):
    """eps_uncond + s (eps_cond - eps_uncond) in one batched call (Ho & Salimans 2022, eq. 6)."""

    def guided(x, t, class_labels):
        both = model(
            torch.cat([x, x]),
            torch.cat([t, t]),
            class_labels=torch.cat([class_labels, torch.full_like(class_labels, null_class)]),
        )
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    return guided


# --- the folder format -------------------------------------------------------------------------


def pipeline_config(pipe: Pipeline) -> dict:
    from hwaksan.train.diffusion import model_config

    return {
        "model_kind": MODEL_KIND,
        "format_version": FORMAT_VERSION,
        "unet_class": type(pipe.unet).__name__,
        "unet": model_config(pipe.unet),
        "schedule": pipe.schedule.to_config(),
        "prediction_type": pipe.prediction_type,
        "image_shape": list(pipe.image_shape),
        "num_classes": pipe.num_classes,
        "learn_sigma": pipe.learn_sigma,
        "sampler": pipe.sampler,
        "steps": pipe.steps,
        "timestep_spacing": pipe.timestep_spacing,
        "class_names": pipe.class_names,
        "data": pipe.data,
    }


def save_pipeline(
    pipe: Pipeline, path: str | Path, unet_ema: nn.Module | None = None, dtype=torch.float32
) -> Path:
    """`config.json` + `unet.safetensors` (+ `unet_ema.safetensors`) in `path`, atomically."""
    path = Path(path)
    config = pipeline_config(pipe)
    if config["unet"] is None:
        raise HwaksanError(
            f"{type(pipe.unet).__name__} has no config.to_dict(); it cannot be saved"
        )
    config["components"] = ["unet"] + (["unet_ema"] if unet_ema is not None else [])
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in [("unet", pipe.unet), ("unet_ema", unet_ema)]:
        if module is not None:
            weights = {
                k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()
            }
            save_file(weights, str(tmp / f"{name}.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    for file in tmp.iterdir():  # safetensors writes owner-only files; a model is for everyone
        file.chmod(0o644)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def load(
    name_or_path: str | Path, device: str | torch.device | None = None, use_ema: bool = True
) -> Pipeline:
    """A `Pipeline` from a shipped name ("digits", "shapes") or a model folder.

    Uses the EMA weights when the folder has them (`use_ema=False` for the raw ones).
    """
    folder = resolve(name_or_path)
    config = read_config(folder)
    unet = _build_unet(config, folder)
    component = "unet_ema" if use_ema and "unet_ema" in config.get("components", []) else "unet"
    _load_weights(unet, folder / f"{component}.safetensors", folder)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Pipeline(
        unet=unet.to(device).eval().requires_grad_(False),
        schedule=NoiseSchedule.from_config(config["schedule"]),
        prediction_type=config["prediction_type"],
        image_shape=tuple(config["image_shape"]),
        num_classes=config.get("num_classes"),
        learn_sigma=config.get("learn_sigma", False),
        sampler=config.get("sampler", "ddim"),
        steps=config.get("steps", 50),
        timestep_spacing=config.get("timestep_spacing", "leading"),
        class_names=config.get("class_names"),
        data=config.get("data", {}),
    )


def read_config(folder: Path) -> dict:
    """config.json of a model folder, checked to be one of ours and of a version we read."""
    path = folder / "config.json"
    if not path.exists():
        raise HwaksanError(f"{folder} is not a hwaksan model folder: config.json is missing")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise HwaksanError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(config, dict) or config.get("model_kind") != MODEL_KIND:
        raise HwaksanError(
            f"{path} is not a hwaksan model config (its model_kind is not {MODEL_KIND!r})"
        )
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise HwaksanError(f"{path} was written by a newer hwaksan; upgrade to load it")
    missing = [k for k in ("unet", "schedule", "prediction_type", "image_shape") if k not in config]
    if missing:
        raise HwaksanError(f"{path} lacks {', '.join(missing)}")
    return config


def _build_unet(config: dict, folder: Path) -> nn.Module:
    from hwaksan.nets import UNet, UNetConfig

    if config.get("unet_class", "UNet") != "UNet":
        raise HwaksanError(f"{folder}: unknown network class {config['unet_class']!r}")
    try:
        return UNet(UNetConfig.from_dict(config["unet"]))
    except (TypeError, ValueError, KeyError) as e:
        raise HwaksanError(f"{folder}/config.json has an invalid unet config ({e})") from e


def _load_weights(module: nn.Module, path: Path, folder: Path) -> None:
    if not path.exists():
        raise HwaksanError(f"{folder} has no {path.name}: the model's weights are missing")
    try:
        weights = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise HwaksanError(f"{path} is not a readable safetensors file ({e})") from e
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise HwaksanError(f"{path.name} does not match config.json in {folder}: {detail}") from e
