"""A diffusers pipeline folder read as a hwaksan `Pipeline`: `hk.load` comes here when it sees
`model_index.json`.

Read: `unet/` (`UNet2DConditionModel`, or `UNet2DModel` for unconditional pixel models such as
DDPM's), `vae/` (or an LDM folder's `vqvae/`: `AutoencoderKL`, with its `scaling_factor`),
`text_encoder/` + `tokenizer/` (CLIP) for a conditional U-Net, and `scheduler/` (the noise
schedule, prediction type, timestep spacing and flags). Weights are read from safetensors only;
nothing is downloaded; a missing or unsupported part is a one-line HwaksanError naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.interop.detect import INDEX
from hwaksan.interop.networks import DiffusersAutoencoder, DiffusersCLIPTextEncoder, DiffusersUNet
from hwaksan.interop.require import require_diffusers
from hwaksan.interop.scheduler import SchedulerFlags, read_scheduler
from hwaksan.pipeline.pipeline import Pipeline, default_parts

UNETS = ("UNet2DConditionModel", "UNet2DModel")
# components a pipeline folder may carry that generation does not use
IGNORED = ("safety_checker", "feature_extractor", "image_encoder")


def load_diffusers(
    folder: Path, device: torch.device, classifier: nn.Module | None = None
) -> Pipeline:
    """The `Pipeline` of a diffusers folder: its networks wrapped, its scheduler as our schedule
    and sampler flags; `classifier` (a loaded noise-aware classifier) guides it if given."""
    index, ours = _read_index(folder)
    unet = _load_model(folder, index, "unet", UNETS)
    conditional = index["unet"] == "UNet2DConditionModel"
    num_classes = ours.get("num_classes")
    _check_unet(unet, folder / "unet", conditional, num_classes)
    settings = read_scheduler(folder / "scheduler", _class_of(index, "scheduler", folder))
    vae_name = next((name for name in ("vae", "vqvae") if name in index), None)
    autoencoder = None
    if vae_name is not None:
        autoencoder = DiffusersAutoencoder(_load_model(folder, index, vae_name, ("AutoencoderKL",)))
    text_encoder = _text_encoder(folder, index) if conditional else None
    sample_shape, image_shape = _shapes(unet, autoencoder)
    modules = {"autoencoder": autoencoder, "text_encoder": text_encoder, "classifier": classifier}
    modules = {
        k: m.to(device).eval().requires_grad_(False) for k, m in modules.items() if m is not None
    }
    scale = autoencoder.model.config.scaling_factor if autoencoder is not None else 1.0
    return Pipeline(
        unet=DiffusersUNet(unet).to(device).eval().requires_grad_(False),
        schedule=settings.schedule, prediction_type=settings.prediction_type,
        image_shape=image_shape, sample_shape=sample_shape, latent_scale=float(scale),
        sampler=settings.sampler, steps=50, timestep_spacing=settings.timestep_spacing,
        num_classes=num_classes, class_names=ours.get("class_names"),
        data={"diffusers_folder": str(folder)},
        parts=[*default_parts(), SchedulerFlags(settings)], **modules,
    )  # fmt: skip


def _read_index(folder: Path) -> tuple[dict[str, str], dict]:
    """model_index.json as component -> class name, for the components it has (not null), and
    what a hwaksan export noted under "_hwaksan" (the classes of a class-conditional U-Net)."""
    path = folder / INDEX
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise HwaksanError(f"{path} is not readable JSON ({e})") from e
    if not isinstance(raw, dict):
        raise HwaksanError(f"{path} is not a JSON object")
    index = {}
    for name, entry in raw.items():
        if name.startswith("_") or name in IGNORED:
            continue
        is_component = isinstance(entry, list) and len(entry) == 2  # else a pipeline setting
        if is_component and entry[1] is not None:
            index[name] = str(entry[1])
    for name in ("unet", "scheduler"):
        if name not in index:
            raise HwaksanError(f"{path} names no {name}; hwaksan needs unet/ and scheduler/")
    ours = raw.get("_hwaksan", {})
    return index, ours if isinstance(ours, dict) else {}


def _class_of(index: dict[str, str], name: str, folder: Path) -> str:
    if not (folder / name).is_dir():
        raise HwaksanError(f"{folder} lacks {name}/, which {INDEX} names")
    return index[name]


def _load_model(folder: Path, index: dict, name: str, classes: tuple[str, ...]) -> nn.Module:
    """`folder/name` as the diffusers class `index` names, from safetensors only."""
    class_name = _class_of(index, name, folder)
    if class_name not in classes:
        raise HwaksanError(
            f"{folder / name}: {class_name} is not supported (hwaksan reads {', '.join(classes)})"
        )
    if not any((folder / name).glob("*.safetensors")):
        raise HwaksanError(
            f"{folder / name} has no .safetensors weights (hwaksan never unpickles .bin files)"
        )
    cls = getattr(require_diffusers(), class_name)
    try:
        return cls.from_pretrained(str(folder / name), use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HwaksanError(f"{folder / name} does not load as {class_name}: {first}") from e


def _check_unet(unet: nn.Module, where: Path, conditional: bool, num_classes: int | None) -> None:
    """One line for a U-Net input hwaksan's parts do not provide (SDXL's added conditions,
    class embeddings without a known null class, Fourier time features, a learned variance).
    A class embedding is read when a hwaksan export noted its classes (the last row is null)."""
    config = unet.config
    classes = config.get("num_class_embeds")
    null_known = classes is not None and num_classes is not None and classes == num_classes + 1
    unsupported = {
        "addition_embed_type": config.get("addition_embed_type"),
        "class_embed_type": config.get("class_embed_type"),
        "num_class_embeds": None if null_known else classes,
        "encoder_hid_dim_type": config.get("encoder_hid_dim_type"),
    }
    if config.get("time_embedding_type", "positional") != "positional":
        unsupported["time_embedding_type"] = config.get("time_embedding_type")
    for key, value in unsupported.items():
        if value is not None:
            raise HwaksanError(f"{where}: {key}={value!r} is not supported yet")
    out = config.get("out_channels") or config["in_channels"]
    if not conditional and out != config["in_channels"]:
        raise HwaksanError(
            f"{where}: out_channels {out} != in_channels {config['in_channels']} "
            "(a learned-variance output) is not supported"
        )


def _text_encoder(folder: Path, index: dict[str, str]) -> DiffusersCLIPTextEncoder:
    """The CLIP text encoder and tokenizer a conditional U-Net reads its prompts through."""
    for name in ("text_encoder", "tokenizer"):
        if name not in index:
            raise HwaksanError(f"{folder / INDEX} names no {name}, which the U-Net's prompts need")
        _class_of(index, name, folder)
    if index["text_encoder"] != "CLIPTextModel":
        raise HwaksanError(
            f"{folder / 'text_encoder'}: {index['text_encoder']} is not supported "
            "(hwaksan reads CLIPTextModel)"
        )
    if not any((folder / "text_encoder").glob("*.safetensors")):
        raise HwaksanError(
            f"{folder / 'text_encoder'} has no .safetensors weights (hwaksan never unpickles .bin)"
        )
    return DiffusersCLIPTextEncoder(
        folder / "text_encoder", folder / "tokenizer", index["tokenizer"]
    )


def _size(value) -> tuple[int, int]:
    """diffusers' sample_size: an int or an (H, W) pair."""
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _shapes(unet: nn.Module, autoencoder: DiffusersAutoencoder | None):
    """(sample_shape, image_shape): what the sampler makes, and the images after decoding."""
    height, width = _size(unet.config.sample_size)
    sample_shape = (int(unet.config.in_channels), height, width)
    if autoencoder is None:
        return sample_shape, sample_shape
    if sample_shape[0] != autoencoder.latent_channels:
        raise HwaksanError(
            f"the U-Net takes {sample_shape[0]} channels but the vae's latents have "
            f"{autoencoder.latent_channels} (inpainting U-Nets are not supported yet)"
        )
    f = autoencoder.downsample_factor
    channels = int(autoencoder.model.config.out_channels)
    return sample_shape, (channels, height * f, width * f)
