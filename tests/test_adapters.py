"""Adapter folders: textual-inversion embeddings saved, loaded onto a fresh base, and refused in
one line when the base does not fit (LoRA: tests/test_lora.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hwaksan as hk
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.pipeline import Pipeline


def _unet(width: int = 16) -> nn.Module:
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, num_heads=2,
                      attention_resolutions=(4,), context_dim=width)  # fmt: skip
    for name, p in unet.named_parameters():
        if "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)
    return unet.eval()


def _text_encoder(width: int = 16) -> MiniCLIPTextModel:
    torch.manual_seed(1)
    config = MiniCLIPTextConfig(vocab=shapes_vocabulary(), max_length=8, width=width, layers=1,
                                heads=2)  # fmt: skip
    return MiniCLIPTextModel(config).eval().requires_grad_(False)


def _pipe(width: int = 16) -> Pipeline:
    return Pipeline(unet=_unet(width), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=3,
                    text_encoder=_text_encoder(width))  # fmt: skip


def test_textual_inversion_round_trip_and_renamed_token(tmp_path):
    trained, fresh = _text_encoder(), _text_encoder()
    vector = torch.randn(16)
    from hwaksan.nets.adapters import add_embeddings

    add_embeddings(trained, {"<cat>": vector})
    pipe = _pipe()
    pipe.text_encoder = trained
    pipe.save_textual_inversion(tmp_path / "ti", ["<cat>"])
    other = _pipe()
    other.text_encoder = fresh
    assert other.load_textual_inversion(tmp_path / "ti", token="<kitty>") == ["<kitty>"]
    a, b = trained(["a <cat> circle"]), fresh(["a <kitty> circle"])
    assert torch.equal(a.hidden_states, b.hidden_states)
    assert not fresh.token_embedding.weight.requires_grad  # a frozen encoder stays frozen
    with pytest.raises(HwaksanError, match="not a LoRA file this reader knows.*'<cat>'"):
        other.load_lora_weights(tmp_path / "ti")
    with pytest.raises(HwaksanError, match="holds an adapter.*load_textual_inversion"):
        hk.load(tmp_path / "ti")


def test_textual_inversion_for_another_text_encoder_is_a_one_line_error(tmp_path):
    wide = _text_encoder(width=32)
    from hwaksan.nets.adapters import add_embeddings, save_textual_inversion

    add_embeddings(wide, {"<cat>": torch.randn(32)})
    save_textual_inversion(tmp_path / "ti", wide, ["<cat>"])
    with pytest.raises(HwaksanError, match="hidden size is 16"):
        _pipe().load_textual_inversion(tmp_path / "ti")
    no_text = _pipe()
    no_text.text_encoder = None
    with pytest.raises(HwaksanError, match="attaches to a text_encoder; this model has none"):
        no_text.load_textual_inversion(tmp_path / "ti")
