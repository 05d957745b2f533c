"""A consistency model: a U-Net inside the boundary scalings of Song et al. 2023.

f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(x, sigma), with c_skip(sigma_min) = 1 and
c_out(sigma_min) = 0 exactly, so f(x, sigma_min) = x. F is the U-Net's output read as -v: with
sigma_data = 1 a v-prediction U-Net's own x0 estimate is x / (1 + sigma^2) - sigma / sqrt(1 +
sigma^2) v, the same form, so a consistency model started from a v-prediction teacher's weights
starts as that teacher's denoiser (Song et al. 2023 start from EDM's network the same way).

It is a model callable like any denoiser, `model(x_t, t, **cond)`: the VP x_t at (float)
timestep t in, the x0 estimate f out (prediction type "sample"); the timestep's sigma is read
from the schedule the model was made with, stored in its config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from hwaksan.diffusion.consistency import consistency_scalings
from hwaksan.diffusion.schedule import NoiseSchedule, vp_alpha_sigma
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.unet import UNet
from hwaksan.nets.unet_config import UNetConfig


@dataclass
class ConsistencyConfig(JSONConfig):
    """The inner U-Net, the schedule whose timesteps it reads, and the boundary's constants."""

    config_name = "ConsistencyUNet"

    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: dict = field(default_factory=dict)  # NoiseSchedule.to_config()
    sigma_min: float = 0.002  # where f(x, sigma) = x: the schedule's smallest sigma
    sigma_data: float = 1.0  # 1: F is the -v of a v-prediction U-Net

    # what the model folder's checks read from a denoiser's config
    @property
    def num_classes(self) -> int | None:
        return self.unet.num_classes

    @property
    def in_channels(self) -> int:
        return self.unet.in_channels

    @property
    def learn_sigma(self) -> bool:
        return self.unet.learn_sigma


class ConsistencyUNet(nn.Module):
    """model(x_t, t, **cond) -> f(x, sigma(t)), the consistency function's x0 (module docstring)."""

    @classmethod
    def from_config(cls, config: dict) -> ConsistencyUNet:
        """The network a saved `config.to_dict()` describes (how model folders rebuild it)."""
        return cls(ConsistencyConfig.from_dict(config))

    @classmethod
    def from_unet(cls, unet: UNet, schedule: NoiseSchedule) -> ConsistencyUNet:
        """A consistency model around a copy of `unet`'s weights (a v-prediction teacher's)."""
        sigma_min = float(schedule.sigma_at(torch.zeros(1))[0])  # what sigma(0) computes
        model = cls(ConsistencyConfig(unet.config, schedule.to_config(), sigma_min))
        model.unet.load_state_dict(unet.state_dict())
        return model

    def __init__(self, config: ConsistencyConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(config.unet)
        self.schedule = NoiseSchedule.from_config(config.schedule)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The VE sigma [B] (float64) of each timestep; exactly sigma_min at t = 0."""
        return self.schedule.sigma_at(t.detach().reshape(-1).cpu()).to(t.device)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        sigma = self.sigma(t)  # (B,) float64
        c_skip, c_out = consistency_scalings(sigma, self.config.sigma_min, self.config.sigma_data)
        alpha = vp_alpha_sigma(sigma)[0]
        shape = (-1, *([1] * (x_t.ndim - 1)))
        x = x_t / alpha.reshape(shape).to(x_t.dtype)  # (B, C, H, W) the VE x = x0 + sigma eps
        F = -self.unet(x_t, t, **cond)  # (B, C, H, W)
        as_x = dict(dtype=x_t.dtype, device=x_t.device)
        return c_skip.reshape(shape).to(**as_x) * x + c_out.reshape(shape).to(**as_x) * F
