"""IP-Adapter as an adapter folder: `adapter.safetensors` holds its two parts under diffusers'
keys (`image_proj.*`, `ip_adapter.<i>.to_k_ip.weight` / `to_v_ip.weight`); `config.json` says
which image encoder feeds it, how many tokens it makes, and which cross-attention layers it fits."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.folder import save_adapter
from hwaksan.nets.adapters.ip_adapter import (
    ImageProjection,
    IPAdapter,
    IPAdapterAttnProcessor,
    cross_attention_layers,
)

IMAGE_ENCODERS = ("mini_clip",)  # the shipped image towers an adapter can read


def save_ip_adapter(
    path: str | Path, adapter: IPAdapter, unet: nn.Module, image_encoder: str = "mini_clip",
    info: dict | None = None,
) -> Path:  # fmt: skip
    """An adapter folder with `adapter`'s weights (float32) and what they fit: `unet`'s class
    and cross-attention layers, the image encoder, the token count."""
    layers = {str(i): name for i, (name, _) in cross_attention_layers(unet).items()}
    proj = adapter.image_proj
    return save_adapter(
        path, "ip_adapter", adapter.state_dict(),
        base={"class": type(unet).__name__, "cross_attention_layers": layers},
        image_encoder=image_encoder, image_embed_dim=proj.proj.in_features,
        num_tokens=proj.num_tokens, info=info or {},
    )  # fmt: skip


def load_ip_adapter(
    unet: nn.Module, config: dict, tensors: dict[str, torch.Tensor], folder: Path,
    scale: float = 1.0,
) -> IPAdapter:  # fmt: skip
    """Build the adapter a folder describes, check it fits `unet` (else one line), put its
    processors in `unet`'s cross-attention layers; frozen, at `scale`."""
    adapter = _build(unet, config, folder)
    expected = {k: tuple(v.shape) for k, v in adapter.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or [k for k in found if found[k] != expected[k]]
        raise HwaksanError(
            f"{folder} is an IP-Adapter for another base: its weights do not fit this model's "
            f"cross-attention layers (first mismatch: {wrong[0]})"
        )
    adapter.load_state_dict(tensors)
    adapter.requires_grad_(False).eval()
    adapter.set_scale(scale)
    adapter.attach(unet)
    return adapter


def _build(unet: nn.Module, config: dict, folder: Path) -> IPAdapter:
    """An adapter shaped as the config says, for `unet`'s layers (checked against the config)."""
    base = config.get("base", {})
    layers = {str(i): name for i, (name, _) in cross_attention_layers(unet).items()}
    if base.get("class") != type(unet).__name__ or base.get("cross_attention_layers") != layers:
        raise HwaksanError(
            f"{folder} is an IP-Adapter for another base: a {base.get('class')} with "
            f"{len(base.get('cross_attention_layers') or {})} cross-attention layers, not this "
            f"{type(unet).__name__} with {len(layers)}"
        )
    if config.get("image_encoder") not in IMAGE_ENCODERS:
        raise HwaksanError(
            f"{folder} reads images with {config.get('image_encoder')!r}; known image encoders: "
            f"{', '.join(IMAGE_ENCODERS)}"
        )
    try:
        embed_dim, num_tokens = int(config["image_embed_dim"]), int(config["num_tokens"])
    except (KeyError, TypeError, ValueError):
        embed_dim = num_tokens = 0
    if embed_dim < 1 or num_tokens < 1:
        raise HwaksanError(f"{folder}/config.json needs positive image_embed_dim and num_tokens")
    weight = next(unet.parameters())
    processors = {}
    for i, (_, attn) in cross_attention_layers(unet).items():
        to_k = attn.to_k
        processors[i] = IPAdapterAttnProcessor(
            to_k.in_features, to_k.out_features, bias=to_k.bias is not None
        )
    proj = ImageProjection(embed_dim, attn.to_k.in_features, num_tokens)
    return IPAdapter(proj, processors).to(weight.device, weight.dtype)
