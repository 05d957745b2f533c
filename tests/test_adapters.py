"""Adapter folders: LoRA on the U-Net's attention and textual-inversion embeddings, saved,
loaded onto a fresh base, and refused in one line when the base does not fit."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import hwaksan as hk
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.adapters import LoRALinear, inject_lora, lora_target_names
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


def _randomize_lora(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_A.weight.copy_(torch.randn(module.lora_A.weight.shape, generator=g))
                module.lora_B.weight.copy_(torch.randn(module.lora_B.weight.shape, generator=g))


def test_a_lora_is_the_base_at_init_and_w_plus_scale_b_a_after():
    base = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    lora = LoRALinear(copy.deepcopy(base), r=2, lora_alpha=4.0)
    torch.testing.assert_close(lora(x), base(x), rtol=0, atol=0)  # B = 0 at init
    _randomize_lora(lora)
    A, B = lora.lora_A.weight, lora.lora_B.weight  # (2, 6), (5, 2)
    merged = base.weight + (4.0 / 2) * B @ A  # W + scale B A
    torch.testing.assert_close(lora(x), x @ merged.T + base.bias)


def test_a_lora_on_the_unet_equals_its_merged_weights():
    unet = _unet()
    names = lora_target_names(unet)
    assert names and all(n.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v", "to_out") for n in names)
    merged = copy.deepcopy(unet)
    inject_lora(unet, names, r=3, lora_alpha=1.5)
    _randomize_lora(unet)
    with torch.no_grad():
        for name in names:
            layer = unet.get_submodule(name)
            delta = layer.scale * layer.lora_B.weight @ layer.lora_A.weight  # (out, in)
            merged.get_submodule(name).weight.add_(delta)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 50])
    context = torch.randn(2, 4, 16)
    with torch.no_grad():
        ours, by_hand = unet(x, t, context=context), merged(x, t, context=context)
    torch.testing.assert_close(ours, by_hand, rtol=1e-3, atol=1e-3)  # fused vs SDPA paths differ


def test_lora_folder_round_trip_onto_a_fresh_base(tmp_path):
    base = _pipe()
    fresh = copy.deepcopy(base)
    plain = base.generate(2, prompt="a red circle", seed=0, output_type="pt")
    inject_lora(base.unet, lora_target_names(base.unet), r=2, lora_alpha=2.0)
    _randomize_lora(base.unet)
    adapted = base.generate(2, prompt="a red circle", seed=0, output_type="pt")
    assert not torch.equal(adapted, plain)
    base.save_lora_weights(tmp_path / "lora")
    wrapped = fresh.load_lora_weights(tmp_path / "lora", adapter_name="style")
    assert wrapped == lora_target_names(_unet())
    assert fresh.unet.get_submodule(wrapped[0]).adapter_name == "style"
    assert torch.equal(fresh.generate(2, prompt="a red circle", seed=0, output_type="pt"), adapted)
    with pytest.raises(HwaksanError, match="holds an adapter.*load_lora_weights"):
        hk.load(tmp_path / "lora")


def test_a_lora_for_another_base_is_a_one_line_error(tmp_path):
    wide = _unet(width=32)
    inject_lora(wide, lora_target_names(wide), r=2, lora_alpha=2.0)
    Pipeline(unet=wide, schedule=hk.NoiseSchedule.cosine(100), prediction_type="epsilon",
             image_shape=(3, 8, 8)).save_lora_weights(tmp_path / "wide")  # fmt: skip
    pipe = _pipe()
    with pytest.raises(HwaksanError, match=r"to_k.lora_A is \(2, 32\), but this model needs"):
        pipe.load_lora_weights(tmp_path / "wide")
    assert not any(isinstance(m, LoRALinear) for m in pipe.unet.modules())  # nothing half-done
    with pytest.raises(HwaksanError, match="carries no LoRA"):
        pipe.save_lora_weights(tmp_path / "none")


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
    with pytest.raises(HwaksanError, match="not a lora"):
        other.load_lora_weights(tmp_path / "ti")


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
