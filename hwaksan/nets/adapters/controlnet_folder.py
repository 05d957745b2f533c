"""ControlNet as an adapter folder: the trainable copy, hint encoder and zero convolutions, with
the base U-Net's config it was trained against (a ControlNet for another base is refused)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.folder import save_adapter
from hwaksan.nets.controlnet import ControlNet


def save_controlnet(
    path: str | Path, controlnet: ControlNet, dtype: torch.dtype = torch.float16, **info
) -> Path:
    """An adapter folder holding `controlnet` (all its tensors, fp16 as the shipped models) and
    its config; `info` (e.g. the base model's name, the control kind) is kept in config.json."""
    tensors = {k: v.detach() for k, v in controlnet.state_dict().items()}
    base = {"class": "UNet", "unet": controlnet.config.unet.to_dict()}
    return save_adapter(
        path,
        "controlnet",
        tensors,
        base=base,
        dtype=dtype,
        controlnet=controlnet.config.to_dict(),
        **info,
    )


def load_controlnet(
    unet: nn.Module, config: dict, tensors: dict[str, torch.Tensor], folder: Path
) -> ControlNet:
    """The ControlNet a folder holds, on `unet`'s device, frozen; checked to fit `unet` first."""
    controlnet = ControlNet.from_config(config.get("controlnet", {}))
    want = getattr(unet, "config", None)
    if controlnet.config.unet != want:
        raise HwaksanError(
            f"{folder} is a ControlNet for another base model (a U-Net of "
            f"{_shape(controlnet.config.unet)}); this model's U-Net has {_shape(want)}"
        )
    own = controlnet.state_dict()
    if set(tensors) != set(own) or any(tensors[k].shape != own[k].shape for k in own):
        raise HwaksanError(f"{folder}/adapter.safetensors does not match its config.json")
    controlnet.load_state_dict(tensors)
    device = next(unet.parameters()).device
    return controlnet.to(device).eval().requires_grad_(False)


def _shape(config) -> str:
    """A U-Net config in a few words, for an error message."""
    if config is None:
        return "no config"
    return (
        f"channels {tuple(config.channels)} at {config.resolution} px, {config.in_channels} "
        f"input channels, context {config.context_dim}"
    )
