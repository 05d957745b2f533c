"""The PatchGAN discriminator and the VQGAN's adversarial loss terms.

PatchGAN (Isola et al. 2017, pix2pix): a stack of strided 4x4 convs whose output is a grid of
logits, each judging one overlapping patch as real or fake. Hinge loss (Lim & Ye 2017) as in
taming-transformers; the adaptive weight lambda = ||grad L_rec|| / (||grad L_G|| + delta) at the
decoder's last layer (Esser et al. 2021, eq. 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets.config import JSONConfig


@dataclass
class DiscriminatorConfig(JSONConfig):
    config_name = "discriminator"

    in_channels: int = 3
    channels: int = 32  # width of the first layer; doubles per layer up to 8x
    num_layers: int = 2  # 2: each logit sees a 34x34 patch (3: 70x70, pix2pix's default)


class PatchDiscriminator(nn.Module):
    """x [B, C, R, R] in [-1, 1] -> logits [B, 1, h, w], one per patch."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        layers = [nn.Conv2d(config.in_channels, c, 4, 2, 1), nn.LeakyReLU(0.2)]
        for n in range(1, config.num_layers + 1):
            c_in, c = c, config.channels * min(2**n, 8)
            stride = 2 if n < config.num_layers else 1
            layers += [
                nn.Conv2d(c_in, c, 4, stride, 1, bias=False),
                nn.GroupNorm(min(8, c // 4), c),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)
        for m in self.modules():  # pix2pix initialization
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    @classmethod
    def from_config(cls, d: dict) -> PatchDiscriminator:
        return cls(DiscriminatorConfig.from_dict(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, 1, h, w)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), halved."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss: -mean(D(G(z)))."""
    return -logits_fake.mean()


def adaptive_weight(
    rec_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer: torch.Tensor,
    delta: float = 1e-4,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """lambda = ||grad_{last} L_rec|| / (||grad_{last} L_G|| + delta), clamped, no gradient
    (Esser et al. 2021, eq. 7). Both losses must still have their graphs."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (g_grad.norm() + delta)
    return weight.clamp(0.0, max_weight).detach()
