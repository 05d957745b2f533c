"""LoRA on a whole network: choose the layers by name (peft's `target_modules`), wrap them, and
switch, weight, fuse and unfuse the adapters on all of them at once (diffusers' words)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.lora import LoRALayer

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out")  # the attention projections (the default)
CONV_TARGETS = ("skip", "conv1", "conv2")  # the ResBlocks: 1x1 shortcut, 3x3 convolutions


def lora_target_names(
    model: nn.Module, target_modules: Sequence[str] = TARGET_MODULES
) -> list[str]:
    """The names of `model`'s linear and 2-D convolution layers whose last name part is in
    `target_modules` (as peft matches them), or whose full name is."""
    targets = set(target_modules)
    names = []
    for name, module in model.named_modules():
        if isinstance(module, LoRALayer) or ".lora_" in f".{name}" or name.endswith("base_layer"):
            continue
        if isinstance(module, (nn.Linear, nn.Conv2d)) and (
            name in targets or name.rsplit(".", 1)[-1] in targets
        ):
            names.append(name)
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """Every `LoRALayer` of `model`, by the name of the layer it wraps."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALayer)}


def inject_lora(
    model: nn.Module, names: Sequence[str], r: int, lora_alpha: float,
    adapter_name: str = "default", lora_dropout: float = 0.0,
) -> dict[str, LoRALayer]:  # fmt: skip
    """Add adapter `adapter_name` to each named layer of `model` (wrapping it in a `LoRALayer`
    the first time); the layers by name. A name that is no linear or convolution layer of
    `model`, or already carries that adapter, is a one-line HwaksanError, checked first."""
    modules = dict(model.named_modules())
    for name in names:
        module = modules.get(name)
        if not isinstance(module, (LoRALayer, nn.Linear, nn.Conv2d)):
            raise HwaksanError(f"the model has no linear or convolution layer {name!r} for LoRA")
        if isinstance(module, LoRALayer) and adapter_name in module.lora_A:
            raise HwaksanError(f"{name} already carries a LoRA named {adapter_name!r}")
    wrapped = {}
    for name in names:
        layer = model.get_submodule(name)
        if not isinstance(layer, LoRALayer):
            parent_name, _, child = name.rpartition(".")
            layer = LoRALayer(layer)
            setattr(model.get_submodule(parent_name), child, layer)
        layer.add_adapter(adapter_name, r, lora_alpha, lora_dropout)
        wrapped[name] = layer
    return wrapped


def adapter_names(model: nn.Module) -> list[str]:
    """The names of the adapters on `model`, in the order they were added."""
    return list(dict.fromkeys(a for m in lora_layers(model).values() for a in m.r))


def set_adapters(
    model: nn.Module, names: Sequence[str], weights: Sequence[float] | None = None
) -> None:
    """Make exactly `names` active, each at its weight (default 1): diffusers' `set_adapters`."""
    weights = [1.0] * len(names) if weights is None else [float(w) for w in weights]
    if len(weights) != len(names):
        raise HwaksanError(f"{len(names)} adapter(s) but {len(weights)} adapter_weights")
    unknown = [n for n in names if n not in adapter_names(model)]
    if unknown:
        raise HwaksanError(f"no LoRA named {unknown[0]!r}; loaded: {adapter_names(model)}")
    for layer in lora_layers(model).values():
        if layer.merged:
            raise HwaksanError("the LoRA is fused into the weights: unfuse_lora() first")
        layer.active = {n: w for n, w in zip(names, weights) if n in layer.r}


def lora_parameters(model: nn.Module, adapter_name: str | None = None) -> nn.ModuleList:
    """The low-rank layers of one adapter (all with None) as one module: a recipe's trainable
    part, never the layers they wrap."""
    parts = []
    for layer in lora_layers(model).values():
        for name in layer.r:
            if adapter_name in (None, name):
                parts += [layer.lora_A[name], layer.lora_B[name]]
    return nn.ModuleList(parts)


def fuse_lora(model: nn.Module, lora_scale: float = 1.0) -> None:
    """Fold the active adapters (their weights times `lora_scale`) into the base weights."""
    for layer in lora_layers(model).values():
        saved = dict(layer.active)
        layer.active = {n: w * lora_scale for n, w in saved.items()}
        layer.merge()
        layer.active = saved


def unfuse_lora(model: nn.Module) -> None:
    """Restore every base weight to what it was before `fuse_lora`, bit for bit."""
    for layer in lora_layers(model).values():
        layer.unmerge()


def delete_adapters(model: nn.Module, names: Sequence[str]) -> None:
    """Remove adapters; a layer left with none is unwrapped back to its base layer."""
    for name, layer in lora_layers(model).items():
        for adapter in names:
            if adapter in layer.r:
                layer.delete_adapter(adapter)
        if not layer.r:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, layer.base_layer)


@contextlib.contextmanager
def lora_scale(model: nn.Module, scale: float) -> Iterator[None]:
    """Every active adapter's weight times `scale` inside the block (diffusers' `scale` of
    `cross_attention_kwargs`): 0 is the base, 1 the adapters as set."""
    layers = list(lora_layers(model).values())
    saved = [dict(layer.active) for layer in layers]
    try:
        for layer, active in zip(layers, saved):
            layer.active = {n: w * scale for n, w in active.items()}
        yield
    finally:
        for layer, active in zip(layers, saved):
            layer.active = active


def lora_state_dict(model: nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """One adapter's tensors with peft's saved names (no adapter name):
    "<layer>.lora_A.weight" (r, in[, k, k]) and "<layer>.lora_B.weight" (out, r[, 1, 1])."""
    return {
        f"{name}.{part}.weight": getattr(layer, part)[adapter_name].weight.detach()
        for name, layer in lora_layers(model).items()
        if adapter_name in layer.r
        for part in ("lora_A", "lora_B")
    }
