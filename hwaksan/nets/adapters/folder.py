"""An adapter as a folder: `config.json` ("model_kind": "hwaksan.adapter", its `adapter_type`,
the `base` it fits) + `adapter.safetensors`. It loads onto a base model's component.

Each adapter type registers one line in `ADAPTER_TYPES`: the component it attaches to and its
loader `load(module, config, tensors, folder, **options)`, which checks the fit before changing
anything. Textual inversion, ControlNet and IP-Adapter today (LoRA has its own exchange
files: `lora_file.py`); Perfusion's rank-one edits and others plug in here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwaksan.components import read_folder, read_tensors, write_folder
from hwaksan.errors import HwaksanError

ADAPTER_KIND = "hwaksan.adapter"
FORMAT_VERSION = 1
WEIGHTS = "adapter"  # adapter.safetensors

# adapter_type -> (the pipeline component it attaches to, "module:loader"); one line per type
ADAPTER_TYPES: dict[str, tuple[str, str]] = {
    "controlnet": ("unet", "hwaksan.nets.adapters.controlnet_folder:load_controlnet"),
    "ip_adapter": ("unet", "hwaksan.nets.adapters.ip_adapter_folder:load_ip_adapter"),
    "textual_inversion": (
        "text_encoder",
        "hwaksan.nets.adapters.textual_inversion_folder:load_textual_inversion",
    ),
}


def save_adapter(
    path: str | Path,
    adapter_type: str,
    tensors: dict[str, torch.Tensor],
    base: dict[str, Any],
    dtype: torch.dtype = torch.float32,
    **config: Any,
) -> Path:
    """Write an adapter folder atomically: `tensors` in `dtype` (float32 unless told), `base`
    (what it fits) and the type's own JSON `config` (rank, tokens, ...)."""
    if adapter_type not in ADAPTER_TYPES:
        raise HwaksanError(
            f"unknown adapter type {adapter_type!r}; known: {', '.join(ADAPTER_TYPES)}"
        )
    saved = {"model_kind": ADAPTER_KIND, "format_version": FORMAT_VERSION}
    saved.update(adapter_type=adapter_type, base=base, **config)
    return write_folder(path, saved, {WEIGHTS: tensors}, dtype)


def adapter_config(path: str | Path) -> dict | None:
    """The config.json of a hwaksan adapter folder at `path`, unchecked; None for anything else
    (another tool's file, a folder without that config)."""
    import json

    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) and config.get("model_kind") == ADAPTER_KIND else None


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """An adapter folder's checked config, its tensors, and the folder."""
    folder = Path(path)
    config = read_folder(folder, ADAPTER_KIND, FORMAT_VERSION)
    if config.get("adapter_type") not in ADAPTER_TYPES:
        raise HwaksanError(
            f"{folder} holds an adapter of unknown type {config.get('adapter_type')!r}; "
            f"known: {', '.join(ADAPTER_TYPES)}"
        )
    return config, read_tensors(folder / f"{WEIGHTS}.safetensors", folder), folder


def load_adapter(
    path: str | Path,
    components: dict[str, nn.Module | None],
    adapter_type: str | None = None,
    **options: Any,
) -> Any:
    """Load the adapter folder at `path` onto the component it attaches to (from `components`,
    by name); `adapter_type` insists on one type. What the type's loader returns."""
    config, tensors, folder = read_adapter(path)
    found = config["adapter_type"]
    if adapter_type is not None and found != adapter_type:
        raise HwaksanError(f"{folder} holds a {found} adapter, not a {adapter_type} one")
    component, loader = ADAPTER_TYPES[found]
    module = components.get(component)
    if module is None:
        raise HwaksanError(f"a {found} adapter attaches to a {component}; this model has none")
    module_name, attribute = loader.split(":")
    load = getattr(importlib.import_module(module_name), attribute)
    return load(module, config, tensors, folder, **options)
