"""Textual inversion (Gal et al. 2022): new words whose input embeddings were learned while the
text encoder stayed frozen; loading one adds the token and sets its embedding row."""

from __future__ import annotations

import torch
from torch import nn

from hwaksan.errors import HwaksanError


def input_embeddings(text_encoder: nn.Module) -> nn.Embedding:
    """The token embedding table of one of our text encoders (mini-CLIP or a HF model)."""
    table = getattr(text_encoder, "token_embedding", None)
    if table is None and hasattr(getattr(text_encoder, "model", None), "get_input_embeddings"):
        table = text_encoder.model.get_input_embeddings()
    if not isinstance(table, nn.Embedding):
        raise HwaksanError(f"{type(text_encoder).__name__} has no token embedding table to extend")
    return table


def add_embeddings(text_encoder: nn.Module, embeddings: dict[str, torch.Tensor]) -> list[int]:
    """Add each token to `text_encoder`'s vocabulary with its learned embedding (D,); the new
    ids. A wrong hidden size or a known token is a one-line HwaksanError, checked before any
    change."""
    width = input_embeddings(text_encoder).embedding_dim
    for token, vector in embeddings.items():
        if tuple(vector.shape) != (width,):
            raise HwaksanError(
                f"the embedding of {token!r} has shape {tuple(vector.shape)}, but this text "
                f"encoder's hidden size is {width}: it was learned for another text encoder"
            )
    frozen = not any(p.requires_grad for p in text_encoder.parameters())
    ids = text_encoder.add_tokens(list(embeddings))
    table = input_embeddings(text_encoder)  # add_tokens may have replaced the table
    with torch.no_grad():
        for i, vector in zip(ids, embeddings.values()):
            table.weight[i] = vector.to(table.weight.device, table.weight.dtype)  # (D,)
    if frozen:
        table.requires_grad_(False)
    return ids


def token_embeddings(text_encoder: nn.Module, tokens: list[str]) -> dict[str, torch.Tensor]:
    """The embedding rows (D,) of added tokens, by token."""
    tokenizer = text_encoder.tokenizer
    table = input_embeddings(text_encoder).weight.detach()
    lookup = tokenizer.ids.get if hasattr(tokenizer, "ids") else tokenizer.convert_tokens_to_ids
    ids = {token: lookup(token) for token in tokens}
    unknown = [
        t for t, i in ids.items() if i is None or i == getattr(tokenizer, "unk_token_id", -1)
    ]
    if unknown:
        raise HwaksanError(f"the text encoder does not know the token(s) {unknown}")
    return {token: table[i].clone() for token, i in ids.items()}
