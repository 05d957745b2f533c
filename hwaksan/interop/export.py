"""A hwaksan model written as a folder diffusers loads (`hwaksan export-diffusers`).

A pixel model becomes a `DDIMPipeline` (a `DDPMPipeline` when its sampler is DDPM): our `UNet` as
`UNet2DModel` with the same weights (`unet_mapping`), our schedule as the scheduler config. A latent
model becomes an `LDMPipeline` whose `vqvae` is a diffusers `AutoencoderKL` holding our KL
autoencoder, `scaling_factor` our `latent_scale`. What does not map is a one-line HwaksanError
naming the part: a text-to-image U-Net, a VQ autoencoder, and the KL autoencoder's encoder, whose
downsampling pads all four sides where diffusers' pads right and bottom only (`decoder_only=True`
exports it anyway: generation matches, `vae.encode` does not).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.interop import unet_mapping as mapping
from hwaksan.interop.export_lora import write_lora
from hwaksan.interop.require import require_diffusers
from hwaksan.interop.scheduler import scheduler_config
from hwaksan.pipeline.pipeline import Pipeline

ENCODER_MISMATCH = (
    "the KL autoencoder's encoder does not map onto diffusers' AutoencoderKL (its downsampling "
    "pads every side by 1, diffusers' pads right and bottom only)"
)


def export_diffusers(pipe: Pipeline, out: str | Path, decoder_only: bool = False) -> Path:
    """Write `pipe` as a diffusers pipeline folder at `out` (a new or empty folder, written whole
    or not at all); `decoder_only` exports a latent model whose vae encodes differently."""
    diffusers = require_diffusers()
    unet = to_unet2d(pipe.unet)
    name, config = scheduler_config(
        pipe.schedule, pipe.prediction_type, pipe.timestep_spacing, pipe.sampler
    )
    scheduler = getattr(diffusers, name)(**config)
    if pipe.autoencoder is not None:
        vae = to_autoencoder_kl(pipe.autoencoder, pipe.latent_scale, decoder_only)
        folder = diffusers.LDMPipeline(vqvae=vae, unet=unet, scheduler=scheduler)
    elif name == "DDPMScheduler":
        folder = diffusers.DDPMPipeline(unet=unet, scheduler=scheduler)
    else:
        folder = diffusers.DDIMPipeline(unet=unet, scheduler=scheduler)
    extra = {"num_classes": pipe.num_classes, "class_names": pipe.class_names}

    def write(tmp: Path) -> None:
        folder.save_pretrained(tmp)
        _note_in_index(tmp, {k: v for k, v in extra.items() if v is not None})
        write_lora(pipe, tmp)  # the LoRA layers the base weights leave out

    return _write_whole(Path(out), write)


def export_autoencoder(autoencoder: nn.Module, out: str | Path, decoder_only: bool = False):
    """Write our KL autoencoder alone as a diffusers `AutoencoderKL` folder (scaling_factor 1)."""
    vae = to_autoencoder_kl(autoencoder, 1.0, decoder_only)
    return _write_whole(Path(out), lambda tmp: vae.save_pretrained(tmp))


def to_unet2d(unet: nn.Module) -> nn.Module:
    """diffusers' `UNet2DModel` computing what our pixel `UNet` computes (same weights)."""
    from hwaksan.nets.unet import UNet

    if type(unet) is not UNet:
        raise HwaksanError(
            f"the denoiser {type(unet).__name__} does not map onto a diffusers class"
        )
    model = require_diffusers().UNet2DModel(**mapping.unet2d_config(unet.config))
    _load_renamed(model, unet, mapping.unet2d_names(unet.config))
    return model


def to_autoencoder_kl(autoencoder: nn.Module, scaling_factor: float, decoder_only: bool):
    """diffusers' `AutoencoderKL` holding our KL autoencoder's weights (its decoder computes what
    ours does; its encoder only with `decoder_only`, see `ENCODER_MISMATCH`)."""
    from hwaksan.nets.autoencoder import AutoencoderKL

    if type(autoencoder) is not AutoencoderKL:
        raise HwaksanError(
            f"the autoencoder {type(autoencoder).__name__} does not map: export reads KL ones"
        )
    if not decoder_only:
        raise HwaksanError(f"{ENCODER_MISMATCH}; --decoder-only exports it for generation")
    cfg = autoencoder.config
    model = require_diffusers().AutoencoderKL(**mapping.autoencoder_kl_config(cfg, scaling_factor))
    _load_renamed(model, autoencoder, mapping.autoencoder_kl_names(cfg))
    return model


def _load_renamed(theirs: nn.Module, ours: nn.Module, names: dict[str, str]) -> None:
    """Copy `ours`' weights into `theirs` under diffusers' names (LoRA layers: their base)."""
    state = base_weights(ours)
    theirs.load_state_dict({mapping.rename(key, names): value for key, value in state.items()})
    theirs.eval()


def base_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state dict without attachments: a LoRA-wrapped layer's base weights under the
    layer's own name (its LoRA tensors are `export_lora.write_lora`'s to write)."""
    state = {}
    for key, value in module.state_dict().items():
        if ".lora_A." not in key and ".lora_B." not in key:
            state[key.replace(".base_layer.", ".")] = value
    return state


def _note_in_index(folder: Path, extra: dict) -> None:
    """hwaksan's fields diffusers has no word for (the null class), under "_hwaksan" in
    model_index.json (diffusers skips keys that start with "_")."""
    if not extra:
        return
    path = folder / "model_index.json"
    index = json.loads(path.read_text())
    index["_hwaksan"] = extra
    path.write_text(json.dumps(index, indent=2) + "\n")


def _write_whole(out: Path, write: Callable[[Path], None]) -> Path:
    """Run `write` into a temporary folder beside `out`, then move it into place."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HwaksanError(f"{out} exists and is not an empty folder; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
