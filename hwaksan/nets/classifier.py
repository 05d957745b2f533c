"""A noise-aware classifier p(y | x_t, t): the U-Net's encoder half with a pooled head.

Guided Diffusion's classifier (Dhariwal & Nichol 2021, sec. 4 and appendix: "the downsampling
trunk of the UNet model with an attention pool at the 8x8 layer"), built from the U-Net's own
parts: its `UNetEncoder` without a middle block (time embedding, ResBlocks that hear t,
self-attention, strided-conv downsampling). Here the head is GroupNorm-SiLU-global-average-pool-
linear. Its gradient steers sampling (`hwaksan.sampling.classifier_guidance`).

The input is x_t times `input_scale[t]`, set to alpha_t = sqrt(alphas_cumprod[t]) by the recipe:
x_t holds alpha_t x0 and nothing else about y, so the gradient of a true log p(y | x_t) shrinks
with alpha_t; built in, a spurious gradient at t ~ T (alpha ~ 1e-4 on a cosine schedule) cannot
be blown up by the sampler's first step, which multiplies any eps error by ~sigma/alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.norm import GroupNorm
from hwaksan.nets.unet_config import UNetConfig
from hwaksan.nets.unet_encoder import UNetEncoder, _Layer


@dataclass
class NoisyClassifierConfig(JSONConfig):
    """The classifier's shape, and the noise schedule its inputs x_t were drawn from."""

    config_name = "classifier"

    in_channels: int = 3
    resolution: int = 32  # H == W of the inputs
    num_classes: int = 10
    channels: tuple[int, ...] = (32, 64, 128)  # one level per width; each next level halves H, W
    layers_per_block: int = 1
    attention_resolutions: tuple[int, ...] = ()  # feature-map sizes that get self-attention
    num_heads: int = 4
    norm_groups: int = 8
    dropout: float = 0.0
    schedule: dict | None = None  # ScheduleConfig as a dict: what "t" means to this classifier

    def validate(self) -> None:
        """Raise HwaksanError, saying why, when this shape cannot be built."""
        levels = len(self.channels)
        if self.resolution % 2 ** (levels - 1):
            raise HwaksanError(
                f"classifier resolution {self.resolution} is not divisible by 2**{levels - 1}"
            )
        for c in self.channels:
            if c % self.norm_groups or c % self.num_heads:
                raise HwaksanError(
                    f"classifier width {c} is not divisible by norm_groups={self.norm_groups} "
                    f"and num_heads={self.num_heads}"
                )


class NoisyClassifier(nn.Module):
    """classifier(x_t, t) -> logits (B, num_classes) of p(y | x_t, t)."""

    @classmethod
    def from_config(cls, config: dict) -> NoisyClassifier:
        """The network a saved `config.to_dict()` describes (how model folders rebuild it)."""
        return cls(NoisyClassifierConfig.from_dict(config))

    def __init__(self, config: NoisyClassifierConfig):
        super().__init__()
        config.validate()
        self.config = cfg = config
        self.encoder = UNetEncoder(encoder_config(cfg), mid=False)  # ResBlocks hear t; no middle
        c = cfg.channels[-1]
        self.norm_out = GroupNorm(cfg.norm_groups, c)
        self.head = nn.Linear(c, cfg.num_classes)
        T = (cfg.schedule or {}).get("num_train_timesteps", 1000)
        self.register_buffer("input_scale", torch.ones(T))  # alpha_t; saved with the weights
        self.register_load_state_dict_pre_hook(_rename_legacy_keys)

    def scaled_input(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x * input_scale[t], read linearly between entries for fractional t (Euler/Heun)."""
        t = t.to(self.input_scale.device).float().clamp(0, len(self.input_scale) - 1)
        low = t.floor().long().clamp(max=len(self.input_scale) - 2)
        w = t - low
        scale = (1 - w) * self.input_scale[low] + w * self.input_scale[low + 1]  # (B,)
        return x * scale.to(x.dtype)[:, None, None, None]

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), t (B,) long or float -> logits (B, num_classes)."""
        t = t.reshape(-1).expand(x.shape[0])  # (B,)
        h = self.encoder(self.scaled_input(x, t), t).h  # (B, C_last, H/2^(L-1), W/2^(L-1))
        h = F.silu(self.norm_out(h)).mean(dim=(2, 3))  # (B, C_last): global average pool
        return self.head(h)  # (B, num_classes)


def encoder_config(cfg: NoisyClassifierConfig) -> UNetConfig:
    """The U-Net shape whose encoder is this classifier's trunk: no classes, no context, and the
    ResBlocks' scale-shift conditioning (ADM's classifier uses it too)."""
    return UNetConfig(
        in_channels=cfg.in_channels, resolution=cfg.resolution, channels=cfg.channels,
        layers_per_block=cfg.layers_per_block, attention_resolutions=cfg.attention_resolutions,
        num_heads=cfg.num_heads, dropout=cfg.dropout, norm_groups=cfg.norm_groups,
        use_scale_shift_norm=True,
    )  # fmt: skip


def legacy_key_renames(encoder: UNetEncoder) -> dict[str, str]:
    """Old state-dict prefix -> new: the old flat `blocks` list held each down layer's ResBlock
    and its attention as two entries, and each Downsample as one."""
    renames = {"time_embedding.": "encoder.time_embedding.", "conv_in.": "encoder.conv_in."}
    i = 0
    for j, layer in enumerate(encoder.down):
        if not isinstance(layer, _Layer):
            renames[f"blocks.{i}."], i = f"encoder.down.{j}.", i + 1
            continue
        renames[f"blocks.{i}."], i = f"encoder.down.{j}.res.", i + 1
        if layer.attn is not None:
            renames[f"blocks.{i}."], i = f"encoder.down.{j}.attn.", i + 1
    return renames


def _rename_legacy_keys(classifier: NoisyClassifier, state_dict: dict, prefix: str, *_) -> None:
    """Weights saved before the classifier shared `UNetEncoder` (`blocks.N`, `conv_in`,
    `time_embedding` at the top) load under the encoder's names (a load_state_dict pre-hook)."""
    if not any(k.startswith(prefix + "blocks.") for k in state_dict):
        return
    renames = legacy_key_renames(classifier.encoder)
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = key[len(prefix) :]
        old = next((old for old in renames if name.startswith(old)), None)
        if old is not None:
            state_dict[prefix + renames[old] + name[len(old) :]] = state_dict.pop(key)


# --- the folder format: config.json + classifier.safetensors ------------------------------------

MODEL_KIND = "hwaksan.classifier"


FORMAT_VERSION = 1
WEIGHTS = "classifier"  # classifier.safetensors


def save_classifier(
    classifier: NoisyClassifier, path: str | Path, dtype: torch.dtype = torch.float32, **info
) -> Path:
    """Write `config.json` (the network config, plus JSON `info`) and `classifier.safetensors`,
    atomically."""
    from hwaksan.components import write_folder

    config = {"model_kind": MODEL_KIND, "format_version": FORMAT_VERSION}
    config.update(config=classifier.config.to_dict(), **info)
    return write_folder(path, config, {WEIGHTS: classifier}, dtype)


def load_classifier(
    name_or_path: str | Path, device: str | torch.device | None = None
) -> NoisyClassifier:
    """A noise-aware classifier from a shipped name ("digits_classifier_noisy") or a folder, in
    eval mode and frozen (guidance differentiates it with respect to x_t only)."""
    from hwaksan.components import construct, load_weights, read_folder
    from hwaksan.registry import resolve

    folder = resolve(name_or_path)
    path = folder / "config.json"
    saved = read_folder(folder, MODEL_KIND, FORMAT_VERSION)
    make = lambda: NoisyClassifier(NoisyClassifierConfig.from_dict(saved["config"]))  # noqa: E731
    classifier = construct(make, str(path), "classifier")
    load_weights(classifier, folder / f"{WEIGHTS}.safetensors", folder)
    device = torch.device(device or "cpu")
    return classifier.to(device).eval().requires_grad_(False)
