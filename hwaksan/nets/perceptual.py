"""Perceptual distance: LPIPS (Zhang et al. 2018, eq. 1) on any feature network.

d(x, y) = sum_l mean_hw || w_l * (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|) ||^2 with f_l a layer's
features normalized over channels. Two backbones: the project's own shapes-world CNN (trained by
`scripts/train_perceptual_net.py`, weights in `hwaksan/weights/perceptual/`, w_l = 1), and VGG16
with the real LPIPS weights for users who have them (`lpips_vgg(vgg_file, lin_file)`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.features import FeatureCNN, load_feature_net

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "perceptual"
SHAPES_NET = "shapes_perceptual"
# VGG16 `features` layout (torchvision's indices); LPIPS taps relu1_2, 2_2, 3_3, 4_3, 5_3
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG16_TAPS = (3, 8, 15, 22, 29)
# LPIPS's input scaling layer (inputs in [-1, 1])
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def normalize_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """f [B, C, H, W] divided by its L2 norm over channels at every position."""
    return f / (f.square().sum(1, keepdim=True).sqrt() + eps)


class PerceptualLoss(nn.Module):
    """LPIPS on `backbone(x) -> [f_1, ..., f_L]`; per-channel weights w_l (ones if not given).
    Frozen: gradients flow to the inputs only. `forward(x, y)` -> distances [B]."""

    def __init__(self, backbone: nn.Module, channels: list[int], weights: list | None = None):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        weights = weights or [torch.ones(c) for c in channels]
        for l, w in enumerate(weights):
            self.register_buffer(f"weight_{l}", w.reshape(-1).float().clone())
        self.num_layers = len(channels)

    def train(self, mode: bool = True) -> PerceptualLoss:
        return super().train(False)  # the feature net's BatchNorm always uses its running stats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(torch.cat([x, y]))  # list of [2B, C_l, H_l, W_l]
        total = 0.0
        for l, f in enumerate(feats):
            fx, fy = normalize_channels(f).chunk(2)  # (B, C_l, H_l, W_l) each
            w = getattr(self, f"weight_{l}").to(f.dtype)[None, :, None, None]
            total = total + (w * (fx - fy).square()).sum(1).mean((1, 2))  # (B,)
        return total


class FeatureTaps(nn.Module):
    """A `FeatureCNN`'s stage outputs (before each stage's pooling) as a list of feature maps."""

    def __init__(self, net: FeatureCNN):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, taps = self.net.prepare(x), []
        for stage in self.net.stages:
            h = stage[:-1](h)  # (B, width, H, W): convs, norms, SiLUs
            taps.append(h)
            h = stage[-1](h)  # (B, width, H/2, W/2): pooling
        return taps


def shapes_perceptual(directory: Path = WEIGHTS_DIR) -> PerceptualLoss:
    """LPIPS on the project's shapes-world CNN (not the Frechet-distance net: they stay apart)."""
    net = load_feature_net(SHAPES_NET, directory)
    return PerceptualLoss(FeatureTaps(net), list(net.config.widths))


class VGG16Taps(nn.Module):
    """VGG16's conv stack (Simonyan & Zisserman 2015) with torchvision's `features.N` names,
    after LPIPS's input scaling; returns the five relu_k outputs LPIPS reads."""

    def __init__(self):
        super().__init__()
        layers, c_in = [], 3
        for v in VGG16_LAYERS:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, taps = (x - self.shift) / self.scale, []
        for i, layer in enumerate(self.features[: VGG16_TAPS[-1] + 1]):
            h = layer(h)
            if i in VGG16_TAPS:
                taps.append(h)
        return taps


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a `.pth` through torch's weights-only loader
    (which rebuilds tensors and refuses arbitrary objects)."""
    path = Path(path)
    if not path.exists():
        raise HwaksanError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise HwaksanError(f"{path} is not a readable weights file ({e})") from e


def lpips_vgg(vgg_file: str | Path, lin_file: str | Path) -> PerceptualLoss:
    """LPIPS-VGG with its real weights: torchvision's VGG16 state dict (`features.N.*` keys) and
    the LPIPS linear layers (`lin{k}.model.1.weight`, shape [1, C, 1, 1])."""
    taps = VGG16Taps()
    vgg = {k: v for k, v in read_tensors(vgg_file).items() if k.startswith("features.")}
    try:
        taps.load_state_dict({**vgg, "shift": taps.shift, "scale": taps.scale})
    except RuntimeError as e:
        raise HwaksanError(f"{vgg_file} is not a VGG16 state dict ({str(e)[:200]})") from e
    lins = read_tensors(lin_file)
    channels = [v for v in VGG16_LAYERS if v != "M"]
    channels = [channels[i] for i in (1, 3, 6, 9, 12)]  # 64, 128, 256, 512, 512
    try:
        weights = [lins[f"lin{k}.model.1.weight"] for k in range(5)]
    except KeyError as e:
        raise HwaksanError(f"{lin_file} has no LPIPS linear layer {e}") from e
    if [w.numel() for w in weights] != channels:
        raise HwaksanError(f"{lin_file}: LPIPS layer widths {[w.numel() for w in weights]}")
    return PerceptualLoss(taps, channels, weights)
