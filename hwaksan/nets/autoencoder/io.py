"""An autoencoder as a folder: `config.json` ("model_kind": "hwaksan.autoencoder", the class and
its config) + `autoencoder.safetensors`. Nothing is pickled."""

from __future__ import annotations

from pathlib import Path

import torch

from hwaksan.components import (
    build_component,
    component_spec,
    load_weights,
    read_folder,
    write_folder,
)
from hwaksan.errors import HwaksanError
from hwaksan.registry import WEIGHTS_DIR

from .base import AutoencoderBase

MODEL_KIND = "hwaksan.autoencoder"
FORMAT_VERSION = 1
WEIGHTS = "autoencoder"  # autoencoder.safetensors
# shipped names -> one line on what each is (README has their measured scores)
SHIPPED: dict[str, str] = {
    "autoencoder_kl": "KL autoencoder, 64 px shapes world (1-3 objects), f = 4, 4 latent channels",
    "autoencoder_vq": "VQ autoencoder, 64 px shapes world (1-3 objects), f = 4, codebook",
}


def save_autoencoder(
    model: AutoencoderBase, path: str | Path, info: dict | None = None, dtype=torch.float16
) -> Path:
    """Write the folder atomically (a temporary folder renamed whole); `info` goes in as "data"."""
    config = {"model_kind": MODEL_KIND, "format_version": FORMAT_VERSION}
    config.update(component_spec(model))
    config["downsample_factor"] = model.downsample_factor
    config["latent_shape"] = list(model.latent_shape)
    config["data"] = info or {}
    return write_folder(path, config, {WEIGHTS: model}, dtype)


def resolve_autoencoder(name_or_path: str | Path) -> Path:
    """A shipped autoencoder's folder for a name, else the folder (or a training run's model/)."""
    path = Path(name_or_path)
    if path.is_dir():
        inner = path / "model"
        return inner if (inner / "config.json").exists() else path
    if str(name_or_path) in SHIPPED:
        return WEIGHTS_DIR / str(name_or_path)
    raise HwaksanError(
        f"no autoencoder {str(name_or_path)!r}: not a folder, and the shipped names are "
        + ", ".join(SHIPPED)
    )


def read_autoencoder_config(folder: Path) -> dict:
    """config.json of an autoencoder folder, checked to be one."""
    return read_folder(folder, MODEL_KIND, FORMAT_VERSION)


def load_autoencoder(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """An `AutoencoderKL` or `VQModel` from a shipped name or a folder, in fp32 and eval mode."""
    folder = resolve_autoencoder(name_or_path)
    config = read_autoencoder_config(folder)
    model = build_component(config, folder)
    if not isinstance(model, AutoencoderBase):
        raise HwaksanError(f"{folder}/config.json names {config['class']}, not an autoencoder")
    load_weights(model, folder / f"{WEIGHTS}.safetensors", folder)
    return model.float().to(device).eval()
