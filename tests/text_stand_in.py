"""A stand-in text encoder for the text-to-image tests: fixed random word vectors, no download.

It keeps the text-encoder contract (pads to max_length, a True mask for <bos> and each word,
cuts long prompts with a warning) so the recipe and the pipeline can be tested on their own.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import torch
from torch import nn


@dataclass
class WordEncoderConfig:
    hidden_size: int = 16
    max_length: int = 8  # <bos> + up to 7 words

    def to_dict(self) -> dict:
        return asdict(self)


class WordEncoder(nn.Module):
    """encoder(prompts) -> hidden_states [B, L, D] (word vector + position), mask, pooled."""

    persistent_weights = False

    def __init__(self, config: WordEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or WordEncoderConfig()
        self.max_length, self.hidden_size = self.config.max_length, self.config.hidden_size
        g = torch.Generator().manual_seed(0)  # fixed: a folder stores only the config
        position = 0.1 * torch.randn(self.max_length, self.hidden_size, generator=g)
        self.position = nn.Parameter(position, requires_grad=False)

    @classmethod
    def from_config(cls, config: dict) -> WordEncoder:
        return cls(WordEncoderConfig(**config))

    def word(self, word: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
        return torch.randn(self.hidden_size, generator=g)

    def forward(self, prompts: list[str]) -> SimpleNamespace:
        B, L, D = len(prompts), self.max_length, self.hidden_size
        hidden, mask = torch.zeros(B, L, D), torch.zeros(B, L, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            words = ["<bos>", *prompt.split()]
            if len(words) > L:
                cut = " ".join(words[L:])
                warnings.warn(f"prompt {prompt!r} is too long; cut: {cut!r}", stacklevel=2)
                words = words[:L]
            for j, w in enumerate(words):
                hidden[i, j] = self.word(w)
            mask[i, : len(words)] = True
        hidden = hidden + self.position.detach()  # (B, L, D)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D)
        return SimpleNamespace(hidden_states=hidden, attention_mask=mask, pooled=pooled)
