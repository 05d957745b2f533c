"""The key formats LoRA files come in, turned into one canonical form.

Canonical: {"<component>.<layer name in that component>": LoRAWeights(down=A, up=B, alpha)}.
Formats read (a file may mix them):
- peft / diffusers today: "unet.<layer>.lora_A.weight", "unet.<layer>.lora_B.weight"; rank and
  alpha in the safetensors metadata "lora_adapter_metadata" ("unet.r", "unet.lora_alpha",
  "unet.rank_pattern", "unet.alpha_pattern": diffusers#6087, where alpha was lost for years);
- diffusers before peft: "unet.<layer>.lora.down.weight" / ".lora.up.weight",
  "<attention>.processor.to_q_lora.down.weight" (attention processors; `to_out_lora` is to_out),
  "text_encoder.<layer>.lora_linear_layer.down.weight";
- kohya (sd-scripts, A1111, ComfyUI): "lora_unet_<layer with _ for .>.lora_down.weight",
  ".lora_up.weight" and a scalar ".alpha"; "lora_te_" (or "lora_te1_") is the text encoder.
Layer names are resolved against the model's real module names (`resolve_layer`): a kohya name
matches the module whose dotted name, or its dotted tail, reads the same with "_" for "."; so a
file made for a diffusers U-Net also finds its layers in a model that wraps one.
Without an alpha a layer's alpha is its rank (scale 1), as diffusers and peft read such files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import torch
from torch import nn

from hwaksan.errors import HwaksanError

METADATA_KEY = "lora_adapter_metadata"  # diffusers' safetensors metadata key
KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder",
                  "lora_te2_": "text_encoder_2"}  # fmt: skip
# (pattern, which tensor) -> the layer name is group 1; the order matters (longest first)
_PATTERNS = [
    (re.compile(r"(.+)\.lora_A(?:\.default)?\.weight"), "down"),
    (re.compile(r"(.+)\.lora_B(?:\.default)?\.weight"), "up"),
    (re.compile(r"(.+)\.lora_linear_layer\.down\.weight"), "down"),
    (re.compile(r"(.+)\.lora_linear_layer\.up\.weight"), "up"),
    (re.compile(r"(.+_lora(?:\.0)?)\.down\.weight"), "down"),  # processor.to_q_lora
    (re.compile(r"(.+_lora(?:\.0)?)\.up\.weight"), "up"),
    (re.compile(r"(.+)\.lora\.down\.weight"), "down"),
    (re.compile(r"(.+)\.lora\.up\.weight"), "up"),
    (re.compile(r"(.+)\.lora_down\.weight"), "down"),
    (re.compile(r"(.+)\.lora_up\.weight"), "up"),
    (re.compile(r"(.+)\.alpha"), "alpha"),
]
_PROCESSOR = re.compile(r"(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora(?:\.0)?$")


@dataclass
class LoRAWeights:
    """One layer's update in canonical form: (alpha / r) up @ down."""

    down: torch.Tensor  # A: (r, in) or (r, in, k, k)
    up: torch.Tensor  # B: (out, r) or (out, r, 1, 1)
    alpha: float | None = None  # None: the rank (scale 1)

    @property
    def rank(self) -> int:
        return self.down.shape[0]


def split_key(key: str, source: str = "the file") -> tuple[str, str, str]:
    """(component, layer name as written, tensor: "down" | "up" | "alpha") of one file key."""
    for prefix, component in KOHYA_PREFIXES.items():
        if key.startswith(prefix):
            key = f"{component}.{key[len(prefix) :]}"
            break
    else:
        key = key.removeprefix("base_model.model.")
    for pattern, part in _PATTERNS:
        match = pattern.fullmatch(key)
        if match:
            layer = match.group(1)
            processor = _PROCESSOR.fullmatch(layer)
            if processor:  # diffusers' attention-processor LoRA names the projection it adds to
                layer = f"{processor.group(1)}.{processor.group(2)}"
            component, _, name = layer.partition(".")
            if component not in ("unet", "text_encoder", "text_encoder_2"):
                component, name = "unet", layer  # peft's own files: no component prefix
            return component, name, part
    raise HwaksanError(f"{source} is not a LoRA file this reader knows: a tensor named {key!r}")


def read_alphas(metadata: dict[str, str] | None) -> tuple[dict[str, float], dict[str, float]]:
    """From diffusers' metadata: each component's lora_alpha, and the per-layer alpha_pattern
    ("<component>.<layer>")."""
    if not metadata or METADATA_KEY not in metadata:
        return {}, {}
    try:
        config = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise HwaksanError(f"the file's {METADATA_KEY} metadata is not JSON: {e}") from None
    alphas, patterns = {}, {}
    for key, value in config.items():
        component, _, field = key.partition(".")
        if field == "lora_alpha":
            alphas[component] = float(value)
        elif field == "alpha_pattern":
            patterns.update({f"{component}.{k}": float(v) for k, v in value.items()})
    return alphas, patterns


def canonical(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None,
    components: dict[str, nn.Module | None], source: str = "the file",
) -> dict[str, LoRAWeights]:  # fmt: skip
    """Any of the formats above as {"<component>.<real layer name>": LoRAWeights}, names resolved
    against `components` (a layer that resolves nowhere keeps its name as written)."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        component, name, part = split_key(key, source)
        module = components.get(component)
        real = name if module is None else resolve_layer(module, name)
        parts.setdefault(f"{component}.{real}", {})[part] = tensor
    alphas, patterns = read_alphas(metadata)
    weights = {}
    for layer, found in parts.items():
        if "down" not in found or "up" not in found:
            missing = "down (A)" if "down" not in found else "up (B)"
            raise HwaksanError(f"the LoRA file has no {missing} matrix for {layer}")
        alpha = found.get("alpha")
        alpha = float(alpha) if alpha is not None else patterns.get(layer)
        if alpha is None:
            alpha = alphas.get(layer.split(".", 1)[0])
        weights[layer] = LoRAWeights(found["down"], found["up"], alpha)
    return weights


# wrappers some files name that the model may not have: CLIP's layers are "text_model.encoder..."
# in transformers 4 (and in every kohya file), "encoder..." in transformers 5
OPTIONAL_WRAPPERS = ("text_model",)


def resolve_layer(model: nn.Module, name: str) -> str:
    """The real name in `model` of a layer written `name`: itself, the unique module whose dotted
    tail is `name` (a wrapped model), or whose name or tail reads `name` with "_" for "."
    (kohya); diffusers' `to_out.0` is our `to_out`; a leading `OPTIONAL_WRAPPERS` name the model
    lacks is dropped. Unresolved: `name` itself."""
    found = _resolve(model, name)
    for wrapper in OPTIONAL_WRAPPERS:
        for sep in (".", "_"):
            if found is None and name.startswith(wrapper + sep):
                found = _resolve(model, name[len(wrapper) + 1 :])
    return name if found is None else found


def _resolve(model: nn.Module, name: str) -> str | None:
    """`resolve_layer` without the wrappers: None when nothing matches."""
    index = _layer_index(model)
    for candidate in (name, name.removesuffix(".0"), f"{name}.0"):
        if candidate in index["exact"]:
            return candidate
        tails = index["tail"].get(candidate, set())
        if len(tails) == 1:
            return next(iter(tails))
    flat = name.replace(".", "_")
    for candidate in (flat, flat.removesuffix("_0"), f"{flat}_0"):
        found = index["flat"].get(candidate, set())
        if len(found) == 1:
            return next(iter(found))
        if len(found) > 1:
            raise HwaksanError(f"the LoRA layer {name!r} could be any of {sorted(found)[:3]}")
    return None


def _layer_index(model: nn.Module) -> dict[str, dict]:
    """The model's layer names: exact, by every dotted tail, and by every tail with "_" for
    "." (cached on the model until its set of modules changes)."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
             or hasattr(m, "base_layer")]  # fmt: skip
    names = [n for n in names if ".lora_" not in f".{n}" and not n.endswith("base_layer")]
    cached = getattr(model, "_lora_layer_index", None)
    if cached is not None and cached[0] == names:
        return cached[1]
    exact, tail, flat = set(names), {}, {}
    for n in names:
        pieces = n.split(".")
        for i in range(len(pieces)):
            suffix = ".".join(pieces[i:])
            tail.setdefault(suffix, set()).add(n)
            flat.setdefault(suffix.replace(".", "_"), set()).add(n)
    index = {"exact": exact, "tail": tail, "flat": flat}
    object.__setattr__(model, "_lora_layer_index", (names, index))
    return index


def to_peft_keys(weights: dict[str, LoRAWeights]) -> dict[str, torch.Tensor]:
    """Canonical form -> the keys diffusers writes today: "<component>.<layer>.lora_A.weight"."""
    out = {}
    for layer, w in weights.items():
        out[f"{layer}.lora_A.weight"] = w.down
        out[f"{layer}.lora_B.weight"] = w.up
    return out


def to_kohya_keys(weights: dict[str, LoRAWeights]) -> dict[str, torch.Tensor]:
    """Canonical form -> kohya's keys (alpha as a scalar tensor; rank when unknown)."""
    prefix = {"unet": "lora_unet_", "text_encoder": "lora_te_", "text_encoder_2": "lora_te2_"}
    out = {}
    for layer, w in weights.items():
        component, _, name = layer.partition(".")
        key = prefix[component] + name.replace(".", "_")
        out[f"{key}.lora_down.weight"], out[f"{key}.lora_up.weight"] = w.down, w.up
        out[f"{key}.alpha"] = torch.tensor(float(w.alpha if w.alpha is not None else w.rank))
    return out


def to_old_diffusers_keys(weights: dict[str, LoRAWeights]) -> dict[str, torch.Tensor]:
    """Canonical form -> diffusers' keys before peft: ".lora.down.weight" / ".lora.up.weight",
    attention projections as ".processor.to_q_lora.down.weight". They carry no alpha."""
    out = {}
    for layer, w in weights.items():
        head, _, last = layer.rpartition(".")
        stem = f"{head}.processor.{last}_lora" if last in ("to_q", "to_k", "to_v", "to_out") else (
            f"{layer}.lora")  # fmt: skip
        out[f"{stem}.down.weight"], out[f"{stem}.up.weight"] = w.down, w.up
    return out
