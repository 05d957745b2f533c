"""LoRA as an adapter folder: save a network's LoRA tensors, load them onto a fresh base."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.folder import save_adapter
from hwaksan.nets.adapters.lora import LoRALinear, inject_lora, lora_state_dict


def save_lora(path: str | Path, model: nn.Module) -> Path:
    """An adapter folder with every LoRA of `model` (its rank, alpha and wrapped layers)."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    if not layers:
        raise HwaksanError("the model carries no LoRA to save")
    (r, alpha), *others = {(m.r, m.lora_alpha) for m in layers.values()}
    if others:
        raise HwaksanError("the model's LoRAs differ in rank or alpha; save them one at a time")
    return save_adapter(
        path, "lora", lora_state_dict(model), base={"class": type(model).__name__},
        r=r, lora_alpha=alpha, target_modules=list(layers),
    )  # fmt: skip


def load_lora(
    model: nn.Module, config: dict, tensors: dict[str, torch.Tensor], folder: Path,
    adapter_name: str | None = None,
) -> list[str]:  # fmt: skip
    """Wrap the layers a LoRA folder names and set their A and B (frozen, like the base); the
    wrapped layer names. Checked to fit first: names, shapes and rank, else one line."""
    base = config.get("base", {}).get("class")
    if base is not None and base != type(model).__name__:
        raise HwaksanError(f"{folder} is a LoRA for a {base}, not a {type(model).__name__}")
    names, r = list(config.get("target_modules", [])), int(config.get("r", 0))
    expected = {f"{n}.{part}.weight" for n in names for part in ("lora_A", "lora_B")}
    if set(tensors) != expected or r < 1:
        raise HwaksanError(f"{folder}/adapter.safetensors does not match its config.json")
    modules = dict(model.named_modules())
    for name in names:
        layer = modules.get(name)
        if not isinstance(layer, nn.Linear):
            raise HwaksanError(f"{folder} is a LoRA for a layer {name!r} this model does not have")
        want = {"lora_A": (r, layer.in_features), "lora_B": (layer.out_features, r)}
        for part, shape in want.items():
            got = tuple(tensors[f"{name}.{part}.weight"].shape)
            if got != shape:
                raise HwaksanError(
                    f"{folder}: {name}.{part} is {got}, but this model needs {shape}"
                )
    wrapped = inject_lora(model, names, r, float(config["lora_alpha"]), adapter_name or "default")
    with torch.no_grad():
        for name, layer in wrapped.items():
            for part in ("lora_A", "lora_B"):
                getattr(layer, part).weight.copy_(tensors[f"{name}.{part}.weight"])
            layer.requires_grad_(False)
    return names
