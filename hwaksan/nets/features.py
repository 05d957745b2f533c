"""Small CNNs whose penultimate features serve the Frechet distance / KID and class accuracy.

One architecture, two shipped configurations: `digits_classifier` (1x16x16, 10 digit classes)
and `shapes_features` (3x32x32, attribute heads of the shapes world). Weights live in
`hwaksan/weights/eval/<name>.safetensors` with a `<name>.json` config beside them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwaksan.nets.config import JSONConfig

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "eval"


@dataclass
class FeatureNetConfig(JSONConfig):
    """Shape of a feature CNN; `heads` names the output groups (name -> size) in order."""

    in_channels: int = 1
    resolution: int = 16  # inputs are resized to resolution x resolution
    widths: tuple[int, ...] = (32, 64)  # one stage per width, each halves the resolution
    feature_dim: int = 64  # penultimate features: what the Frechet distance compares
    feature_scale: float = 1.0  # features are divided by this: their RMS on the training data
    heads: dict[str, int] = field(default_factory=lambda: {"digit": 10})
    norm: str = "group"  # "group" | "batch" (batch statistics keep each image's absolute colors)
    global_pool: bool = False  # also feed the spatial max of the last stage (where-invariant)
    extra: dict = field(default_factory=dict)  # vocabulary, training record, measured accuracy


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.GroupNorm(8, channels) if kind == "group" else nn.BatchNorm2d(channels)


def _stage(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    """Two 3x3 convs (normalization, SiLU), then a 2x average pool."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        _norm(norm, c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        _norm(norm, c_out),
        nn.SiLU(),
        nn.AvgPool2d(2),
    )


class FeatureCNN(nn.Module):
    """conv stages -> flatten -> `feature_dim` features -> one linear layer for all heads."""

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.in_channels, *config.widths]
        self.stages = nn.Sequential(
            *[_stage(a, b, config.norm) for a, b in zip(widths[:-1], widths[1:])]
        )
        side = config.resolution // 2 ** len(config.widths)
        flat = config.widths[-1] * (side * side + config.global_pool)
        self.to_features = nn.Linear(flat, config.feature_dim)
        self.head = nn.Linear(config.feature_dim, sum(config.heads.values()))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] in [-1, 1] -> the net's channels (gray <-> RGB) and resolution."""
        if images.shape[1] != self.config.in_channels:
            if self.config.in_channels == 1:
                images = images.mean(1, keepdim=True)  # RGB -> gray
            else:
                images = images.expand(-1, self.config.in_channels, -1, -1)  # gray -> RGB
        size = self.config.resolution
        if images.shape[-2:] != (size, size):
            smaller = images.shape[-1] > size
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", align_corners=False, antialias=smaller
            )
        return images

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, feature_dim] of images [B, C, H, W] in [-1, 1]."""
        h = self.stages(self.prepare(images))  # [B, widths[-1], side, side]
        flat = h.flatten(1)  # [B, widths[-1] * side * side]
        if self.config.global_pool:
            flat = torch.cat([flat, h.amax((2, 3))], 1)  # [B, widths[-1] * (side * side + 1)]
        return F.silu(self.to_features(flat)) / self.config.feature_scale  # [B, D]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of every head, concatenated: [B, sum(heads)]."""
        return self.head(self.features(images) * self.config.feature_scale)

    def split_heads(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The concatenated logits cut into one tensor per head name."""
        return dict(zip(self.config.heads, logits.split(list(self.config.heads.values()), 1)))


def digits_classifier_config() -> FeatureNetConfig:
    """The digit classifier: gray 16x16 (8x8 digits are resized bilinearly), 10 classes."""
    return FeatureNetConfig(in_channels=1, resolution=16, widths=(32, 64), feature_dim=64)


def shapes_features_config(heads: dict[str, int]) -> FeatureNetConfig:
    """The shapes-world feature net: RGB 32x32, ground-truth attribute heads."""
    return FeatureNetConfig(
        in_channels=3, resolution=32, widths=(32, 64, 128), feature_dim=128, heads=heads,
        norm="batch",  # GroupNorm erases each image's absolute color levels: color went unlearned
        global_pool=True,  # "is there a star anywhere" from a max over positions, not 16 detectors
    )  # fmt: skip


def save_feature_net(net: FeatureCNN, name: str, directory: Path = WEIGHTS_DIR) -> None:
    """Write `<name>.safetensors` (fp32) and `<name>.json` (the config) into `directory`."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(asdict(net.config), indent=2) + "\n")


@functools.lru_cache(maxsize=4)
def load_feature_net(name: str, directory: Path = WEIGHTS_DIR) -> FeatureCNN:
    """A shipped feature net ("digits_classifier" or "shapes_features"), in eval mode."""
    from safetensors.torch import load_file

    from hwaksan.errors import HwaksanError

    config_path, weights_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not (config_path.exists() and weights_path.exists()):
        raise HwaksanError(
            f"no feature network weights {weights_path}: run scripts/train_feature_nets.py"
        )
    raw = json.loads(config_path.read_text())
    config = FeatureNetConfig.from_dict(raw)
    net = FeatureCNN(config)
    net.load_state_dict(load_file(str(weights_path)))
    return net.eval().requires_grad_(False)
