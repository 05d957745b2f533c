"""Text encoders: prompts -> per-token states for cross-attention, a mask, a pooled vector.

enc = build_text_encoder("mini_clip")     # or "minilm", or a Hugging Face CLIP folder
out = enc(["a red circle to the left of a blue square"])
out.hidden_states [B, max_length, hidden_size], out.attention_mask [B, max_length], out.pooled
"""

from hwaksan.nets.text.base import TextEncoder, TextEncoding, build_text_encoder, load_text_encoder
from hwaksan.nets.text.mini_clip import (
    MiniCLIP,
    MiniCLIPConfig,
    MiniCLIPTextConfig,
    MiniCLIPTextModel,
    MiniCLIPVisionConfig,
    MiniCLIPVisionModel,
    load_mini_clip,
    save_mini_clip,
)
from hwaksan.nets.text.tokenizer import WordTokenizer

__all__ = [
    "MiniCLIP",
    "MiniCLIPConfig",
    "MiniCLIPTextConfig",
    "MiniCLIPTextModel",
    "MiniCLIPVisionConfig",
    "MiniCLIPVisionModel",
    "TextEncoder",
    "TextEncoding",
    "WordTokenizer",
    "build_text_encoder",
    "load_mini_clip",
    "load_text_encoder",
    "save_mini_clip",
]
