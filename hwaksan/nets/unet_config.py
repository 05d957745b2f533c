"""The U-Net's shape as one commented dataclass, stored beside its weights as JSON."""

from __future__ import annotations

from dataclasses import dataclass

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig


@dataclass
class UNetConfig(JSONConfig):
    """Everything that decides the U-Net's shape; stored beside its weights as JSON."""

    config_name = "UNet"

    in_channels: int = 3
    out_channels: int | None = None  # None: the same as in_channels
    resolution: int = 32  # H == W of the inputs it is built for
    channels: tuple[int, ...] = (64, 128, 128)  # one level per width; each next level halves H, W
    layers_per_block: int = 1  # ResBlocks per level on the way down (one more on the way up)
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes that get attention
    num_heads: int = 4
    dropout: float = 0.0
    num_classes: int | None = None  # class embedding with an extra null class id == num_classes
    context_dim: int | None = None  # not None -> transformer blocks with cross-attention
    learn_sigma: bool = False  # True -> 2 * out_channels (mean and variance interpolation v)
    transformer_depth: int = 1
    context_layers: int = 0  # > 0: a trainable transformer re-reads the context (nets/context.py)
    norm_groups: int = 32
    use_scale_shift_norm: bool = True  # ADM's GroupNorm(h) * (1 + scale) + shift; False adds t
    channels_last: bool = False  # activations' memory format (speed, not math); weights stay NCHW
    concat_channels: int = 0  # extra inputs concatenated to x_t (a low-res image, a mask + latents)

    def __post_init__(self):
        if self.out_channels is None:
            self.out_channels = self.in_channels

    @property
    def resolutions(self) -> list[int]:
        """Feature-map size at each level."""
        return [self.resolution // 2**i for i in range(len(self.channels))]

    def validate(self) -> None:
        """Raise HwaksanError, saying why, when this shape cannot be built."""
        levels = len(self.channels)
        if self.concat_channels < 0:
            raise HwaksanError(f"concat_channels must be >= 0, not {self.concat_channels}")
        if self.resolution % 2 ** (levels - 1):
            raise HwaksanError(
                f"resolution {self.resolution} is not divisible by 2**{levels - 1} = "
                f"{2 ** (levels - 1)}, which {levels} levels of downsampling need"
            )
        missing = sorted(set(self.attention_resolutions) - set(self.resolutions))
        if missing:
            raise HwaksanError(
                f"attention resolutions {missing} are never reached: at resolution "
                f"{self.resolution} the levels are {self.resolutions}"
            )
        if self.context_layers and (self.context_dim is None or self.context_dim % self.num_heads):
            raise HwaksanError(
                f"context_layers={self.context_layers} needs a context_dim divisible by "
                f"num_heads={self.num_heads}, not {self.context_dim}"
            )
        for c in self.channels:
            if c % self.norm_groups or c % self.num_heads:
                raise HwaksanError(
                    f"channel width {c} is not divisible by norm_groups={self.norm_groups} "
                    f"and num_heads={self.num_heads}"
                )
