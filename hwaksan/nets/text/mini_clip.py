"""mini-CLIP: a small text transformer and a small image CNN trained contrastively on shapes-world
captions (CLIP, Radford et al. 2021), sized to train on a laptop CPU in minutes.

The text tower is a `TextEncoder` (per-token states for cross-attention, pooled at the <eos>
token as CLIP pools); the image tower keeps where things are (a flattened feature map, with
coordinate channels as in CoordConv, Liu et al. 2018), since captions name positions and relations.
A folder holds `config.json` ("model_kind": "hwaksan.mini_clip") and `model.safetensors`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hwaksan.nets.attention import Attention
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.text.base import MINI_CLIP_KIND, TextEncoder, TextEncoding
from hwaksan.nets.text.tokenizer import WordTokenizer
from hwaksan.nets.tokens import to_tokens

WEIGHTS = "model"  # model.safetensors
FORMAT_VERSION = 1


@dataclass
class MiniCLIPTextConfig(JSONConfig):
    config_name = "mini-CLIP text"

    vocab: list[str] = field(default_factory=list)  # words; ids follow 4 specials (the shapes
    # world's: hwaksan.data.shapes.shapes_vocabulary())
    added_tokens: list[str] = field(default_factory=list)  # grown by `add_tokens`
    max_length: int = 32  # tokens per prompt, <bos> and <eos> included
    width: int = 128  # hidden_size
    layers: int = 3
    heads: int = 4


@dataclass
class MiniCLIPVisionConfig(JSONConfig):
    config_name = "mini-CLIP vision"

    resolution: int = 32
    in_channels: int = 3
    channels: tuple[int, ...] = (16, 32, 64, 128)  # the stem, then one stride-2 stage each
    width: int = 256  # the image feature before projection
    attention_layers: int = 0  # transformer layers over the final map's cells (relations)
    heads: int = 4

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)


@dataclass
class MiniCLIPConfig(JSONConfig):
    config_name = "mini-CLIP"

    text: MiniCLIPTextConfig = field(default_factory=MiniCLIPTextConfig)
    vision: MiniCLIPVisionConfig = field(default_factory=MiniCLIPVisionConfig)
    embed_dim: int = 128  # the joint text-image space
    logit_scale_init: float = math.log(1 / 0.07)  # CLIP's initial temperature 0.07


class TextTransformerLayer(nn.Module):
    """Pre-norm self-attention over the real tokens, then a GELU MLP (Vaswani et al. 2017)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads=heads, dim_head=width // heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, width), mask (B, L) True = real token -> (B, L, width)."""
        x = x + self.attn(self.norm1(x), context_mask=mask)  # (B, L, width)
        return x + self.mlp(self.norm2(x))  # (B, L, width)


class MiniCLIPTextModel(TextEncoder):
    """Word embeddings + learned positions, `layers` transformer layers, a final LayerNorm."""

    def __init__(self, config: MiniCLIPTextConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MiniCLIPTextConfig()
        self.tokenizer = WordTokenizer(config.vocab, config.added_tokens)
        self.max_length, self.hidden_size = config.max_length, config.width
        self.token_embedding = nn.Embedding(len(self.tokenizer), config.width)
        self.position_embedding = nn.Parameter(torch.randn(config.max_length, config.width) * 0.01)
        self.layers = nn.ModuleList(
            TextTransformerLayer(config.width, config.heads) for _ in range(config.layers)
        )
        self.final_layer_norm = nn.LayerNorm(config.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    @classmethod
    def from_config(cls, config: dict) -> MiniCLIPTextModel:
        return cls(MiniCLIPTextConfig.from_dict(config))

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokenizer(prompts, self.max_length)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        L = input_ids.shape[1]  # max_length, or fewer (training trims the padding)
        x = self.token_embedding(input_ids) + self.position_embedding[:L]  # (B, L, width)
        for layer in self.layers:
            x = layer(x, attention_mask)  # (B, L, width)
        hidden = self.final_layer_norm(x)  # (B, L, width)
        eos = attention_mask.sum(1) - 1  # (B,) index of <eos>, the last real token
        pooled = hidden[torch.arange(len(hidden), device=hidden.device), eos]  # (B, width)
        return TextEncoding(hidden, attention_mask, pooled)

    def add_tokens(self, tokens: list[str]) -> list[int]:
        """New vocabulary entries; their embeddings start at the mean of the existing ones."""
        ids = self.tokenizer.add_tokens(tokens)
        old = self.token_embedding.weight.data
        grown = nn.Embedding(len(self.tokenizer), old.shape[1]).to(old.device, old.dtype)
        grown.weight.data[: len(old)] = old
        grown.weight.data[len(old) :] = old.mean(0)
        self.token_embedding = grown
        self.config.added_tokens = list(self.tokenizer.added_tokens)
        return ids


class _DownStage(nn.Module):
    """Stride-2 conv, then a residual conv; GroupNorm and GELU after each."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, 2, 1), nn.GroupNorm(8, c_out), nn.GELU()
        )
        self.res = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, 1, 1), nn.GroupNorm(8, c_out), nn.GELU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(x)  # (B, c_out, H/2, W/2)
        return h + self.res(h)  # (B, c_out, H/2, W/2)


class MiniCLIPVisionModel(nn.Module):
    """Image [B, C, R, R] in [-1, 1] -> feature [B, width]: CNN with x/y coordinate channels,
    optional self-attention among the final map's cells (so one cell can compare its content
    with another's: "the red one is left of the blue one"), then the whole map flattened so the
    feature knows where each thing is."""

    def __init__(self, config: MiniCLIPVisionConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MiniCLIPVisionConfig()
        c = config.channels
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels + 2, c[0], 3, 1, 1), nn.GroupNorm(8, c[0]), nn.GELU()
        )
        self.stages = nn.Sequential(*(_DownStage(a, b) for a, b in zip(c[:-1], c[1:])))
        side = config.resolution >> (len(c) - 1)
        if config.attention_layers:
            self.cell_embedding = nn.Parameter(torch.randn(side * side, c[-1]) * 0.01)
            self.layers = nn.ModuleList(
                TextTransformerLayer(c[-1], config.heads) for _ in range(config.attention_layers)
            )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.LayerNorm(c[-1] * side * side),
            nn.Linear(c[-1] * side * side, config.width),
        )
        ramp = torch.linspace(-1, 1, config.resolution)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="xy"))  # (2, R, R): x, y
        self.register_buffer("coords", coords, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        coords = self.coords.to(images.dtype).expand(len(images), -1, -1, -1)  # (B, 2, R, R)
        h = self.stages(self.stem(torch.cat([images, coords], 1)))  # (B, C, s, s)
        if self.config.attention_layers:
            h = to_tokens(h) + self.cell_embedding  # (B, s*s, C)
            everywhere = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)  # (B, s*s)
            for layer in self.layers:
                h = layer(h, everywhere)  # (B, s*s, C)
        return self.head(h)  # (B, width)


class MiniCLIP(nn.Module):
    """Both towers, their projections into one space, and the learned temperature."""

    def __init__(self, config: MiniCLIPConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MiniCLIPConfig()
        self.text_model = MiniCLIPTextModel(config.text)
        self.vision_model = MiniCLIPVisionModel(config.vision)
        self.text_projection = nn.Linear(config.text.width, config.embed_dim, bias=False)
        self.visual_projection = nn.Linear(config.vision.width, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))

    @classmethod
    def from_config(cls, config: dict) -> MiniCLIP:
        return cls(MiniCLIPConfig.from_dict(config))

    def text_embeds(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings [B, embed_dim] (computed on the prompts' real length: the
        padding is masked out, so trimming it changes nothing but the cost)."""
        device = self.logit_scale.device
        ids, mask = self.text_model.tokenize(prompts)
        L = int(mask.sum(1).max())
        pooled = self.text_model.encode(ids[:, :L].to(device), mask[:, :L].to(device)).pooled
        return F.normalize(self.text_projection(pooled), dim=-1)

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings [B, embed_dim] of images in [-1, 1]."""
        return F.normalize(self.visual_projection(self.vision_model(images)), dim=-1)

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """logits_per_image [B_images, B_prompts]: scaled cosine similarities (CLIP, Fig. 3)."""
        scale = self.logit_scale.clamp(max=math.log(100)).exp()  # CLIP caps it at 100
        return scale * self.image_embeds(images) @ self.text_embeds(prompts).T


def save_mini_clip(
    model: MiniCLIP, folder: str | Path, info: dict | None = None, dtype=torch.float32
) -> Path:
    """Write `config.json` + `model.safetensors` (atomically: a temporary folder renamed)."""
    from hwaksan.components import write_folder

    config = {"model_kind": MINI_CLIP_KIND, "format_version": FORMAT_VERSION}
    config.update(config=model.config.to_dict(), info=info or {})
    return write_folder(folder, config, {WEIGHTS: model}, dtype)


def load_mini_clip(name_or_path: str | Path = "mini_clip") -> MiniCLIP:
    """A saved mini-CLIP (float32, eval mode): "mini_clip" (the shipped one) or a folder."""
    from hwaksan.components import construct, load_weights, read_folder
    from hwaksan.registry import WEIGHTS_DIR

    folder = WEIGHTS_DIR / "mini_clip" if str(name_or_path) == "mini_clip" else Path(name_or_path)
    saved = read_folder(folder, MINI_CLIP_KIND, FORMAT_VERSION)
    make = lambda: MiniCLIP(MiniCLIPConfig.from_dict(saved["config"]))  # noqa: E731
    model = construct(make, str(folder / "config.json"), "mini-CLIP")
    load_weights(model, folder / f"{WEIGHTS}.safetensors", folder)
    return model.float().eval()
