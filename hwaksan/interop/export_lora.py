"""The LoRA layers of an exported model, written beside it in diffusers' names.

`export_diffusers` writes the base weights; this writes each LoRA adapter the U-Net carries as a
`pytorch_lora_weights.safetensors` in peft's keys ("unet.<UNet2DModel layer>.lora_A.weight", rank
and alpha in diffusers' "lora_adapter_metadata"), its layer names mapped by `unet_mapping` as the
weights are. One adapter goes in the folder itself, several in a subfolder each. An adapter
already fused (`fuse_lora`) is in the base weights, so it is not written again. diffusers'
`UNet2DModel` has no LoRA loader of its own: peft's `inject_adapter_in_model` and
`set_peft_model_state_dict` read the file onto it.
"""

from __future__ import annotations

from pathlib import Path

from hwaksan.errors import HwaksanError
from hwaksan.interop import unet_mapping as mapping
from hwaksan.nets.adapters.lora_file import WEIGHT_NAME, lora_weights, save_lora_file
from hwaksan.nets.adapters.lora_model import adapter_names, lora_layers
from hwaksan.pipeline.pipeline import Pipeline


def write_lora(pipe: Pipeline, folder: Path) -> list[Path]:
    """Write every unfused LoRA adapter of `pipe`'s U-Net into the exported `folder`; the files."""
    text_encoder = getattr(pipe, "text_encoder", None)
    if text_encoder is not None and lora_layers(text_encoder):
        raise HwaksanError("the text encoder's LoRA does not export: the model's text encoder "
                           "has no diffusers counterpart here")  # fmt: skip
    layers = lora_layers(pipe.unet)
    names = [
        n for n in adapter_names(pipe.unet)
        if any(n in layer.r and n not in layer.merged for layer in layers.values())
    ]  # fmt: skip
    renames = mapping.unet2d_names(pipe.unet.config)
    written = []
    for name in names:
        weights = {
            "unet." + mapping.rename(f"{layer.removeprefix('unet.')}.weight", renames)
            .removesuffix(".weight"): w
            for layer, w in lora_weights({"unet": pipe.unet}, name).items()
        }  # fmt: skip
        target = folder if len(names) == 1 else folder / name
        written.append(save_lora_file(target / WEIGHT_NAME, weights, {"adapter_name": name}))
    return written
