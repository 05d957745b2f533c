"""Textual inversion as an adapter folder: learned token embeddings, loaded onto a text encoder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.folder import save_adapter
from hwaksan.nets.adapters.textual_inversion import (
    add_embeddings,
    input_embeddings,
    token_embeddings,
)


def save_textual_inversion(path: str | Path, text_encoder: nn.Module, tokens: list[str]) -> Path:
    """An adapter folder with the embeddings of `tokens` (added tokens of `text_encoder`)."""
    embeddings = token_embeddings(text_encoder, tokens)
    base = {
        "class": type(text_encoder).__name__,
        "hidden_size": input_embeddings(text_encoder).embedding_dim,
    }
    return save_adapter(path, "textual_inversion", embeddings, base=base, tokens=list(tokens))


def load_textual_inversion(
    text_encoder: nn.Module, config: dict, tensors: dict[str, torch.Tensor], folder: Path,
    token: str | list[str] | None = None,
) -> list[str]:  # fmt: skip
    """Add the folder's tokens (renamed to `token`, as diffusers' `token=`) with their learned
    embeddings; the tokens added. A text encoder of another kind or width is one line."""
    saved = list(config.get("tokens", []))
    if set(saved) != set(tensors) or not saved:
        raise HwaksanError(f"{folder}/adapter.safetensors does not match its config.json")
    base = config.get("base", {}).get("class")
    if base is not None and base != type(text_encoder).__name__:
        raise HwaksanError(
            f"{folder} holds embeddings for a {base} text encoder, not a "
            f"{type(text_encoder).__name__}"
        )
    names = saved if token is None else [token] if isinstance(token, str) else list(token)
    if len(names) != len(saved):
        raise HwaksanError(f"{folder} holds {len(saved)} token(s) {saved}; token= names {names}")
    add_embeddings(text_encoder, {new: tensors[old] for new, old in zip(names, saved)})
    return names
