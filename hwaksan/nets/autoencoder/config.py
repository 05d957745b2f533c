"""The autoencoders' configs: what decides their shape, stored beside the weights as JSON."""

from __future__ import annotations

from dataclasses import dataclass

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig


@dataclass
class AutoencoderConfig(JSONConfig):
    """Encoder/decoder shape (Esser et al. 2021; Rombach et al. 2022, appendix G), KL or VQ."""

    config_name = "autoencoder"

    in_channels: int = 3
    resolution: int = 64  # H == W of the images it is built for
    channels: tuple[int, ...] = (32, 64, 64)  # one level per width; f = 2 ** (levels - 1)
    layers_per_block: int = 1  # ResnetBlocks per level in the encoder (one more in the decoder)
    latent_channels: int = 4  # C of the latent [B, C, H/f, W/f]
    norm_groups: int = 8
    mid_attention: bool = False  # self-attention in the middle block (LDM has one)
    # VQ only (Esser et al. 2021, eq. 4): codebook size K (its vectors have latent_channels dims)
    num_embeddings: int = 256
    commitment_cost: float = 0.25  # beta
    codebook_decay: float = 0.99  # moving-average codebook (0: learn it by gradient, eq. 3)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def validate(self) -> None:
        """Raise HwaksanError, saying why, when this shape cannot be built."""
        f = self.downsample_factor
        if self.resolution % f:
            raise HwaksanError(f"resolution {self.resolution} is not divisible by f = {f}")
        bad = [c for c in self.channels if c % self.norm_groups]
        if bad:
            raise HwaksanError(
                f"channels {bad} are not divisible by norm_groups {self.norm_groups}"
            )
