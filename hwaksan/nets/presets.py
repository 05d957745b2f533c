"""Named U-Net sizes as small factory functions (the habit of DiT's `DiT_models`).

Each takes keyword overrides of any `UNetConfig` field; attention goes at half the input
resolution unless `attention_resolutions` is given. Parameter counts (3 channels in and out,
32 px, no classes) are measured by `tests/test_unet.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from hwaksan.errors import HwaksanError
from hwaksan.nets.unet import UNet, UNetConfig


def _preset(defaults: dict, overrides: dict) -> UNetConfig:
    kw = {**defaults, **overrides}
    kw.setdefault("attention_resolutions", (kw.get("resolution", 32) // 2,))
    return UNetConfig(**kw)


def unet_tiny(**overrides) -> UNetConfig:
    """~0.76 M params: widths (32, 64), one ResBlock per level. Digits in minutes."""
    return _preset(dict(channels=(32, 64), layers_per_block=1, norm_groups=8), overrides)


def unet_small(**overrides) -> UNetConfig:
    """~4.75 M params: widths (64, 128, 128), one ResBlock per level."""
    return _preset(dict(channels=(64, 128, 128), layers_per_block=1), overrides)


def unet_base(**overrides) -> UNetConfig:
    """~6.95 M params: widths (64, 128, 128), two ResBlocks per level (diffusers-matched)."""
    return _preset(dict(channels=(64, 128, 128), layers_per_block=2), overrides)


PRESETS: dict[str, Callable[..., UNetConfig]] = {
    "tiny": unet_tiny,
    "small": unet_small,
    "base": unet_base,
}


def build_unet(name: str, **overrides) -> UNet:
    """A UNet from a preset name and config overrides; a bad name or shape raises HwaksanError."""
    if name not in PRESETS:
        raise HwaksanError(f"unknown U-Net preset {name!r}; choose one of {sorted(PRESETS)}")
    try:
        config = PRESETS[name](**overrides)
    except TypeError as e:
        raise HwaksanError(f"bad override for U-Net preset {name!r}: {e}") from None
    return UNet(config)
