"""A word-level tokenizer with an extensible vocabulary (a word list it is given, plus any added).

Words are lower-cased runs of letters and digits; every other non-space character is a token of
its own. `add_tokens` appends new entries (placeholders like "<s*>" for textual inversion, Gal et
al. 2022, or rare words like "sks" for DreamBooth, Ruiz et al. 2023); an added token is matched
verbatim before the text is split into words. Saved and loaded as JSON.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch

from hwaksan.errors import HwaksanError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_NO_SPACE_BEFORE = set(",.:;!?)")


class WordTokenizer:
    """text <-> ids over `vocab` (list index = id); "<bos> words <eos>" padded with "<pad>"."""

    def __init__(self, vocab: list[str], added_tokens: list[str] | None = None) -> None:
        words = [w for w in vocab if w not in SPECIAL_TOKENS]
        self.vocab: list[str] = [*SPECIAL_TOKENS, *words]
        self.added_tokens: list[str] = []
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        if len(self.ids) != len(self.vocab):
            raise HwaksanError("the tokenizer vocabulary has a repeated word")
        self._added = None
        self.add_tokens(list(added_tokens or []))

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def pad_token_id(self) -> int:
        return 0

    @property
    def eos_token_id(self) -> int:
        return 2

    def add_tokens(self, tokens: list[str]) -> list[int]:
        """Append new tokens (matched verbatim in text); return their ids. A token that is already
        in the vocabulary is a HwaksanError (its meaning would be ambiguous)."""
        known = [t for t in tokens if t in self.ids]
        if known or len(set(tokens)) != len(tokens) or any(not t or t.isspace() for t in tokens):
            raise HwaksanError(
                f"cannot add tokens {known or tokens}: each must be new, non-empty and given once"
            )
        new_ids = []
        for token in tokens:
            self.ids[token] = len(self.vocab)
            new_ids.append(len(self.vocab))
            self.vocab.append(token)
            self.added_tokens.append(token)
        if self.added_tokens:
            longest_first = sorted(self.added_tokens, key=len, reverse=True)
            self._added = re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")
        return new_ids

    def split(self, text: str) -> list[str]:
        """The token strings of `text`: added tokens verbatim, the rest lower-cased words."""
        pieces = self._added.split(text) if self._added else [text]
        tokens: list[str] = []
        for k, piece in enumerate(pieces):  # odd pieces are added tokens (the split's groups)
            tokens += [piece] if k % 2 else _WORD.findall(piece.lower())
        return tokens

    def encode(self, text: str) -> list[int]:
        """Word ids of `text` (no <bos>/<eos>); unknown words map to <unk>."""
        return [self.ids.get(t, 3) for t in self.split(text)]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Text of `ids`, skipping special tokens; punctuation attaches to the word before it."""
        text = ""
        for i in ids.tolist() if torch.is_tensor(ids) else ids:
            token = self.vocab[int(i)]
            if token in SPECIAL_TOKENS:
                continue
            text += token if not text or token in _NO_SPACE_BEFORE else " " + token
        return text

    def __call__(self, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, max_length] long and mask [B, max_length] bool (True = real token), each row
        "<bos> words <eos> <pad>..."; words past max_length - 2 are cut with a warning."""
        ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
        for b, prompt in enumerate(prompts):
            words = self.encode(prompt)
            if len(words) > max_length - 2:
                warn_truncated(prompt, self.decode(words[max_length - 2 :]), max_length)
                words = words[: max_length - 2]
            row = [1, *words, 2]
            ids[b, : len(row)] = torch.tensor(row)
        mask = torch.arange(max_length) < (ids != 0).sum(1, keepdim=True)
        return ids, mask

    def to_dict(self) -> dict:
        base = [w for w in self.vocab[len(SPECIAL_TOKENS) :] if w not in self.added_tokens]
        return {"vocab": base, "added_tokens": list(self.added_tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> WordTokenizer:
        return cls(list(d["vocab"]), list(d.get("added_tokens", [])))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HwaksanError(f"{path} is not a readable tokenizer JSON file ({e})") from e


def warn_truncated(prompt: str, cut: str, max_length: int) -> None:
    """The one warning every encoder gives for a prompt longer than it reads (never an error)."""
    warnings.warn(
        f"prompt {prompt!r} is longer than the text encoder's {max_length} tokens; cut: {cut!r}",
        stacklevel=3,
    )
