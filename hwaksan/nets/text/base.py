"""The text-encoder interface: prompts -> per-token hidden states, attention mask, pooled vector.

Every encoder pads to `max_length` (so conditional and unconditional prompts batch together) and
cuts a longer prompt with a warning that quotes what was cut. Cross-attention reads
`hidden_states` with `attention_mask` (Rombach et al. 2022, sec. 3.3); `pooled` is one vector per
prompt (CLIP's end-of-text feature, or MiniLM's mean pooling).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError

MINI_CLIP_KIND = "hwaksan.mini_clip"
NAMES = ("mini_clip", "minilm")


@dataclass
class TextEncoding:
    """What a text encoder returns for B prompts."""

    hidden_states: torch.Tensor  # [B, max_length, hidden_size] float
    attention_mask: torch.Tensor  # [B, max_length] bool, True = real token
    pooled: torch.Tensor  # [B, hidden_size]

    def __len__(self) -> int:
        return self.hidden_states.shape[0]

    def __getitem__(self, index) -> TextEncoding:
        """Rows `index` (an int keeps the batch dimension)."""
        index = [index] if isinstance(index, int) else index
        return TextEncoding(
            self.hidden_states[index], self.attention_mask[index], self.pooled[index]
        )

    def to(self, device: torch.device | str) -> TextEncoding:
        return TextEncoding(
            self.hidden_states.to(device), self.attention_mask.to(device), self.pooled.to(device)
        )

    @staticmethod
    def cat(encodings: list[TextEncoding]) -> TextEncoding:
        return TextEncoding(
            torch.cat([e.hidden_states for e in encodings]),
            torch.cat([e.attention_mask for e in encodings]),
            torch.cat([e.pooled for e in encodings]),
        )


class TextEncoder(nn.Module, ABC):
    """`encoder(prompts) -> TextEncoding`. Subclasses say how to tokenize and how to encode ids.

    `persistent_weights = False` marks frozen encoders that load their own weights (a model
    folder then stores only their config).
    """

    persistent_weights = True
    max_length: int
    hidden_size: int

    @abstractmethod
    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, max_length] long, mask [B, max_length] bool; long prompts cut with a warning."""

    @abstractmethod
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        """The encoding of token ids (on the encoder's device)."""

    def forward(self, prompts: str | list[str]) -> TextEncoding:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        ids, mask = self.tokenize(self.expand_tokens(prompts))
        device = next(self.parameters()).device
        return self.encode(ids.to(device), mask.to(device))

    def add_tokens(self, tokens: list[str]) -> list[int]:
        """Add new tokens to the vocabulary and grow the embeddings to match; their new ids."""
        raise HwaksanError(f"{type(self).__name__} cannot add tokens")

    def expand_tokens(self, prompts: list[str]) -> list[str]:
        """Each multi-vector textual-inversion token written out as its n tokens ("<cat>" ->
        "<cat> <cat>_1", diffusers' `maybe_convert_prompt`); `multi_vector_tokens` says which."""
        expansions = getattr(self, "multi_vector_tokens", None) or {}
        for token, written in expansions.items():
            prompts = [prompt.replace(token, written) for prompt in prompts]
        return prompts


class HFTextEncoder(TextEncoder):
    """A frozen Hugging Face encoder: `self.tokenizer` and `self.model` from `transformers`
    (their weights come from a package or folder, so a model folder stores only the config)."""

    persistent_weights = False
    tokenizer: object
    model: nn.Module

    @property
    def exchange_root(self) -> nn.Module:
        """The module whose layer names exchanged files (LoRA) use: the transformers model."""
        return self.model

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from hwaksan.nets.text.tokenizer import warn_truncated

        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        keep = self.max_length - 2  # room for the start and end tokens
        for prompt, row in zip(prompts, ids):
            if len(row) > keep:
                warn_truncated(prompt, self.tokenizer.decode(row[keep:]), self.max_length)
        batch = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=self.max_length,
            return_tensors="pt",
        )  # fmt: skip
        return batch["input_ids"], batch["attention_mask"].bool()

    def add_tokens(self, tokens: list[str]) -> list[int]:
        """New tokens, embeddings grown as `transformers` initialises them; in memory only (a
        reloaded folder reads the original weights)."""
        if self.tokenizer.add_tokens(tokens) != len(tokens):
            raise HwaksanError(f"cannot add tokens {tokens}: some are already known")
        self.model.resize_token_embeddings(len(self.tokenizer))
        return self.tokenizer.convert_tokens_to_ids(tokens)


def build_text_encoder(name_or_path: str | Path, pretrained: bool = True, **config) -> TextEncoder:
    """A text encoder by name ("mini_clip": the shipped mini-CLIP's text tower; "minilm": the frozen
    all-MiniLM-L6-v2) or folder (a mini-CLIP folder, or a Hugging Face CLIP model with its
    tokenizer). `pretrained=False` gives a freshly initialised mini-CLIP text tower (`config` sets
    its sizes). Pretrained encoders come back frozen, in eval mode."""
    name = str(name_or_path)
    if name == "mini_clip" and not pretrained:
        from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel

        return MiniCLIPTextModel(MiniCLIPTextConfig.from_dict(config))
    if name == "minilm":
        from hwaksan.nets.text.minilm import MiniLMConfig, MiniLMTextEncoder

        return MiniLMTextEncoder(MiniLMConfig.from_dict(config))
    if name == "mini_clip":
        from hwaksan.nets.text.mini_clip import load_mini_clip

        return _frozen(load_mini_clip(name).text_model)
    path = Path(name)
    if not (path / "config.json").is_file():
        raise HwaksanError(
            f"no text encoder {name!r}: not one of {', '.join(NAMES)} nor a folder with config.json"
        )
    kind = _read_json(path / "config.json")
    if kind.get("model_kind") == MINI_CLIP_KIND:
        from hwaksan.nets.text.mini_clip import load_mini_clip

        return _frozen(load_mini_clip(path).text_model)
    if kind.get("model_type") in ("clip", "clip_text_model"):
        from hwaksan.nets.text.hf_clip import HFCLIPConfig, HFCLIPTextEncoder

        return HFCLIPTextEncoder(HFCLIPConfig(path=str(path.resolve()), **config))
    raise HwaksanError(f"{path} is neither a mini-CLIP folder nor a Hugging Face CLIP model folder")


def load_text_encoder(name_or_path: str | Path, **config) -> TextEncoder:
    """The pretrained, frozen text encoder a name or folder names (see `build_text_encoder`)."""
    return build_text_encoder(name_or_path, pretrained=True, **config)


def _frozen(module: TextEncoder) -> TextEncoder:
    module.requires_grad_(False)
    return module.eval()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HwaksanError(f"{path} is not readable JSON ({e})") from e
