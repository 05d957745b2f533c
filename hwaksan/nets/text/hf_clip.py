"""A Hugging Face `CLIPTextModel` + `CLIPTokenizer` from a local folder (for users with real CLIP
weights, e.g. the `text_encoder/` and `tokenizer/` of a Stable Diffusion download, Radford et al.
2021). Nothing is downloaded; the folder is read where it is (`persistent_weights = False`).

The folder holds the model's `config.json` + weights and the tokenizer files, or has them in
`text_encoder/` and `tokenizer/` subfolders (the diffusers layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.text.base import HFTextEncoder, TextEncoding


@dataclass
class HFCLIPConfig(JSONConfig):
    config_name = "HF CLIP"

    path: str  # the local folder
    max_length: int | None = None  # None: the model's max_position_embeddings (77 for CLIP)


class HFCLIPTextEncoder(HFTextEncoder):
    """`hidden_states` is the last layer after the final LayerNorm (what Stable Diffusion's U-Net
    reads); `pooled` is the <|endoftext|> token's state (CLIP's `pooler_output`)."""

    def __init__(self, config: HFCLIPConfig) -> None:
        super().__init__()
        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError as e:
            raise HwaksanError(
                "a CLIP text encoder needs transformers: pip install 'hwaksan[text]'"
            ) from e
        self.config = config
        root = Path(config.path)
        model_dir = root / "text_encoder" if (root / "text_encoder").is_dir() else root
        tokenizer_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else root
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
            self.model = CLIPTextModel.from_pretrained(str(model_dir))
        except (OSError, ValueError) as e:
            raise HwaksanError(
                f"{root} does not hold a loadable CLIP text model and tokenizer ({e})"
            ) from e
        self.model.eval().requires_grad_(False)
        self.max_length = config.max_length or self.model.config.max_position_embeddings
        self.hidden_size = self.model.config.hidden_size

    @classmethod
    def from_config(cls, config: dict) -> HFCLIPTextEncoder:
        return cls(HFCLIPConfig.from_dict(config))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask.long())
        return TextEncoding(out.last_hidden_state, attention_mask, out.pooler_output)
