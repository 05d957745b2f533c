"""Textual-inversion files from other tools, read as diffusers' `load_textual_inversion` reads
them (safetensors only; pickled `.pt` / `.bin` files are refused, as everywhere in hwaksan).

- diffusers (`learned_embeds.safetensors`): one key, the token, its embedding (D,) or (n, D);
- Automatic1111 in safetensors: one key "emb_params", (n, D); the token comes from `token=`, else
  the file's name (diffusers would call it "emb_params").
An embedding of n > 1 vectors becomes n tokens, `tok`, `tok_1`, ..., `tok_{n-1}`, and a prompt's
`tok` is written out as all n (diffusers' multi-vector tokens, `maybe_convert_prompt`): the text
encoder keeps that in `multi_vector_tokens` (`TextEncoder.expand_tokens`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from hwaksan.components import weight_file
from hwaksan.errors import HwaksanError
from hwaksan.nets.adapters.textual_inversion import add_embeddings

WEIGHT_NAME = "learned_embeds.safetensors"  # diffusers' TEXT_INVERSION_NAME_SAFE
A1111_KEY = "emb_params"


def embedding_file(path: str | Path) -> Path:
    """The safetensors file at `path`, or diffusers' `learned_embeds.safetensors` (else the one
    safetensors file) in the folder at `path`."""
    path = weight_file(path, WEIGHT_NAME, "textual-inversion")
    if path.suffix != ".safetensors":
        raise HwaksanError(f"{path}: only .safetensors embeddings load (pickles can run code)")
    return path


def read_embeddings(path: str | Path, token: str | None = None) -> dict[str, torch.Tensor]:
    """{token: (n, D) embedding} from one file; `token` renames the file's one token."""
    file = embedding_file(path)
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise HwaksanError(f"{file} is not a readable safetensors file ({e})") from None
    if len(tensors) != 1:
        raise HwaksanError(
            f"{file} has {len(tensors)} tensors; a textual-inversion file has one (the token's)"
        )
    (key, embedding), = tensors.items()  # fmt: skip
    name = token or (file.stem if key == A1111_KEY else key)
    embedding = embedding.reshape(-1, embedding.shape[-1]) if embedding.dim() else embedding
    if embedding.dim() != 2:
        raise HwaksanError(f"{file}: the embedding of {name!r} has shape {tuple(embedding.shape)}")
    return {name: embedding.float()}  # (n, D)


def load_embedding_file(
    text_encoder: nn.Module, path: str | Path, token: str | None = None
) -> list[str]:
    """Add the file's token to `text_encoder` (n vectors: n tokens, written out in prompts);
    the tokens added."""
    ((name, embedding),) = read_embeddings(path, token).items()
    names = [name] + [f"{name}_{i}" for i in range(1, embedding.shape[0])]
    add_embeddings(text_encoder, dict(zip(names, embedding)))
    if len(names) > 1:
        expansions = dict(getattr(text_encoder, "multi_vector_tokens", {}))
        expansions[name] = " ".join(names)
        object.__setattr__(text_encoder, "multi_vector_tokens", expansions)
    return names
