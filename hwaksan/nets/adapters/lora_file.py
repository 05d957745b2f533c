"""LoRA files as users exchange them: `pytorch_lora_weights.safetensors` with peft's key names and
alpha / rank in the metadata (what diffusers writes today), read back from that or any format
`lora_formats` knows, checked against the model before anything changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from hwaksan.components import weight_file
from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.lora import LoRALayer
from hwaksan.nets.adapters.lora_formats import METADATA_KEY, LoRAWeights, canonical, to_peft_keys
from hwaksan.nets.adapters.lora_model import inject_lora, lora_layers

WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
BASE_KEY = "hwaksan_base"  # metadata: what the LoRA was trained on (informative)


def lora_weights(
    components: dict[str, nn.Module | None], adapter_name: str = "default"
) -> dict[str, LoRAWeights]:
    """One adapter of every component, canonical: {"<component>.<layer>": LoRAWeights}, layers
    named as in the component's `exchange_root` (a wrapped diffusers or transformers model: the
    names its own library's files use)."""
    out = {}
    for component, module in components.items():
        module = getattr(module, "exchange_root", module)
        for name, layer in lora_layers(module).items() if module is not None else []:
            if adapter_name in layer.r:
                out[f"{component}.{name}"] = LoRAWeights(
                    layer.lora_A[adapter_name].weight.detach().float().cpu().contiguous(),
                    layer.lora_B[adapter_name].weight.detach().float().cpu().contiguous(),
                    layer.lora_alpha[adapter_name],
                )
    return out


def adapter_metadata(weights: dict[str, LoRAWeights]) -> dict[str, object]:
    """diffusers' "lora_adapter_metadata": each component's `LoraConfig` fields with the
    component as prefix (r, lora_alpha, target_modules; rank / alpha patterns where a layer
    differs from the component's most common one)."""
    config: dict[str, object] = {}
    for component in dict.fromkeys(k.split(".", 1)[0] for k in weights):
        prefix = component + "."
        layers = {k.removeprefix(prefix): w for k, w in weights.items() if k.startswith(prefix)}
        ranks = [w.rank for w in layers.values()]
        alphas = [float(w.alpha) for w in layers.values()]
        r, alpha = max(set(ranks), key=ranks.count), max(set(alphas), key=alphas.count)
        config[f"{component}.r"], config[f"{component}.lora_alpha"] = r, alpha
        config[f"{component}.target_modules"] = sorted(layers)
        config[f"{component}.rank_pattern"] = {n: w.rank for n, w in layers.items() if w.rank != r}
        config[f"{component}.alpha_pattern"] = {
            n: float(w.alpha) for n, w in layers.items() if float(w.alpha) != alpha
        }
    return config


def save_lora_file(
    path: str | Path, weights: dict[str, LoRAWeights], base: dict | None = None
) -> Path:
    """Write `weights` to `path` (a folder gets `pytorch_lora_weights.safetensors`), atomically:
    peft's keys, diffusers' metadata, and `base` (what it was trained on) as JSON."""
    if not weights:
        raise HwaksanError("the model carries no LoRA to save")
    path = Path(path)
    file = path if path.suffix == ".safetensors" else path / WEIGHT_NAME
    file.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt",
                METADATA_KEY: json.dumps(adapter_metadata(weights), indent=2, sort_keys=True),
                BASE_KEY: json.dumps(base or {}, sort_keys=True)}  # fmt: skip
    partial = file.with_name(file.name + ".partial")
    save_file(to_peft_keys(weights), str(partial), metadata=metadata)
    os.replace(partial, file)
    return file


def is_lora_file(path: str | Path) -> bool:
    """Whether `path` (a file, or a folder with one LoRA file) holds LoRA tensors: some key names
    a LoRA part ("lora_A", "lora_down", "lora.up", ...), read from the header alone; an
    unreadable file counts as one, so the LoRA reader names the problem."""
    try:
        with safe_open(str(weight_file(path, WEIGHT_NAME, "LoRA")), framework="pt") as f:
            return any("lora" in key for key in f.keys())
    except (HwaksanError, SafetensorError, OSError):
        return True


def read_lora_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a LoRA file, or of the one LoRA file in a folder."""
    path = weight_file(path, WEIGHT_NAME, "LoRA")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise HwaksanError(f"{path} is not a readable safetensors file ({e})") from None
    if not tensors:
        raise HwaksanError(f"{path} holds no tensors")
    return tensors, metadata


def load_lora_onto(
    components: dict[str, nn.Module | None], tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None, adapter_name: str, source: str = "the LoRA",
) -> list[str]:  # fmt: skip
    """Add the file's layers as adapter `adapter_name` (frozen) to the components they name; the
    layer names ("<component>.<layer>"). Every layer is checked to exist with the right shapes
    before anything changes; a LoRA for another base is one line."""
    weights = canonical(tensors, metadata, components, source)
    targets = {layer: _target(components, layer, w, source) for layer, w in weights.items()}
    for layer, (module, name) in targets.items():
        w = weights[layer]
        inject_lora(module, [name], w.rank, w.alpha if w.alpha is not None else w.rank,
                    adapter_name)  # fmt: skip
        wrapped = module.get_submodule(name)
        with torch.no_grad():
            for part, tensor in (("lora_A", w.down), ("lora_B", w.up)):
                param = getattr(wrapped, part)[adapter_name].weight
                param.copy_(tensor.reshape(param.shape))
                param.requires_grad_(False)
    return list(weights)


def _target(components, layer: str, w: LoRAWeights, source: str) -> tuple[nn.Module, str]:
    """The component and layer name one canonical layer loads onto, checked."""
    component, _, name = layer.partition(".")
    module = components.get(component)
    if module is None:
        raise HwaksanError(f"{source} has layers for a {component}; this model has none")
    found = dict(module.named_modules()).get(name)
    if isinstance(found, LoRALayer):
        found = found.base_layer
    if not isinstance(found, (nn.Linear, nn.Conv2d)):
        raise HwaksanError(
            f"{source} is for another base model: its layer {layer} is not in this one"
        )
    r = w.rank
    if isinstance(found, nn.Linear):
        want = {"lora_A": (r, found.in_features), "lora_B": (found.out_features, r)}
    else:
        want = {"lora_A": (r, found.in_channels, *found.kernel_size),
                "lora_B": (found.out_channels, r, 1, 1)}  # fmt: skip
    for part, tensor in (("lora_A", w.down), ("lora_B", w.up)):
        got = tuple(tensor.shape)
        if _squeezed(got) != _squeezed(want[part]):  # 1x1 kernels may be stored or not
            raise HwaksanError(
                f"{source} is for another base model: {layer}.{part} is {got}, "
                f"but this model needs {want[part]}"
            )
    return module, name


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without trailing 1x1 kernel dims (kohya stores 1x1 convs for linear layers)."""
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape
