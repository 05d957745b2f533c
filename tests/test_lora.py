"""LoRA (Hu et al. 2021): the layer's math, several adapters, the scale, fuse / unfuse, the exchange
files (our file read by peft, every key format read back) and bad input."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import hwaksan as hk
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.adapters import (
    LoRALayer,
    canonical,
    delete_adapters,
    fuse_lora,
    inject_lora,
    lora_layers,
    lora_scale,
    lora_target_names,
    lora_weights,
    read_lora_file,
    set_adapters,
    unfuse_lora,
)
from hwaksan.nets.adapters.lora_file import adapter_metadata
from hwaksan.nets.adapters.lora_formats import (
    to_kohya_keys,
    to_old_diffusers_keys,
    to_peft_keys,
)
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.pipeline import Pipeline

CONTEXT = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(5))


def _unet(width: int = 16) -> nn.Module:
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, num_heads=2,
                      attention_resolutions=(4,), context_dim=width)  # fmt: skip
    for name, p in unet.named_parameters():
        if "proj_out" in name or "conv_out" in name or "conv2" in name:
            nn.init.normal_(p, std=0.1)
    return unet.eval()


def _pipe(width: int = 16) -> Pipeline:
    torch.manual_seed(1)
    config = MiniCLIPTextConfig(vocab=shapes_vocabulary(), max_length=8, width=width, layers=1,
                                heads=2)  # fmt: skip
    text_encoder = MiniCLIPTextModel(config).eval().requires_grad_(False)
    return Pipeline(unet=_unet(width), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=3,
                    text_encoder=text_encoder)  # fmt: skip


def _randomize(model: nn.Module, seed: int = 2, adapter: str | None = None) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            for name in layer.r:
                if adapter in (None, name):
                    for part in (layer.lora_A[name], layer.lora_B[name]):
                        part.weight.copy_(0.3 * torch.randn(part.weight.shape, generator=g))


def _out(unet: nn.Module) -> torch.Tensor:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return unet(x, torch.tensor([10, 50]), context=CONTEXT)


def _targets(unet: nn.Module) -> list[str]:
    return lora_target_names(unet, ("to_q", "to_k", "to_v", "to_out", "skip", "conv"))


def test_the_layer_is_its_base_at_init_and_w_plus_scale_b_a_after():
    g = torch.Generator().manual_seed(0)
    for base, x in [(nn.Linear(6, 5), torch.randn(3, 6, generator=g)),
                    (nn.Conv2d(6, 5, 3, padding=1), torch.randn(2, 6, 7, 7, generator=g)),
                    (nn.Conv2d(6, 5, 1), torch.randn(2, 6, 7, 7, generator=g))]:  # fmt: skip
        layer = LoRALayer(copy.deepcopy(base))
        layer.add_adapter("a", r=2, lora_alpha=4.0, lora_dropout=0.5)
        layer.eval()  # dropout off
        assert torch.equal(layer(x), base(x))  # B = 0
        _randomize(layer)
        merged = copy.deepcopy(base)
        with torch.no_grad():
            merged.weight += layer.delta_weight("a")  # (4 / 2) B A
        torch.testing.assert_close(layer(x), merged(x), atol=1e-5, rtol=1e-5)
        layer.train()  # dropout on x of the LoRA branch only
        assert not torch.allclose(layer(x), merged(x), atol=1e-3)


def test_a_fresh_lora_and_scale_zero_leave_the_unet_bit_identical():
    base = _unet()
    unet = copy.deepcopy(base)
    inject_lora(unet, _targets(unet), r=3, lora_alpha=6.0)
    assert torch.equal(_out(unet), _out(base))  # at init
    _randomize(unet)
    assert not torch.allclose(_out(unet), _out(base), atol=1e-3)
    with lora_scale(unet, 0.0):
        assert torch.equal(_out(unet), _out(base))
    with lora_scale(unet, 0.5):  # half the update: between the base and the full LoRA
        half = _out(unet)
    with torch.no_grad():
        for name, layer in lora_layers(unet).items():
            base.get_submodule(name).weight += 0.5 * layer.delta_weight("default")
    torch.testing.assert_close(half, _out(base), atol=1e-4, rtol=1e-4)


def test_fuse_then_unfuse_restores_the_base_weights():
    unet = _unet()
    inject_lora(unet, _targets(unet), r=2, lora_alpha=2.0)
    _randomize(unet)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    lora = _out(unet)
    fuse_lora(unet)
    torch.testing.assert_close(_out(unet), lora, atol=1e-4, rtol=1e-4)
    assert not torch.equal(unet.state_dict()["down.2.res.skip.base_layer.weight"],
                           before["down.2.res.skip.base_layer.weight"])  # fmt: skip
    unfuse_lora(unet)
    for key, value in unet.state_dict().items():
        assert (value - before[key]).abs().max() <= 1e-6, key
    assert torch.equal(_out(unet), lora)
    # two fused adapters, one deleted: it stays baked in, the other unfuses
    inject_lora(unet, _targets(unet), r=2, lora_alpha=2.0, adapter_name="b")
    _randomize(unet, 7, "b")
    fuse_lora(unet)
    delete_adapters(unet, ["default"])
    unfuse_lora(unet)
    with lora_scale(unet, 0.0):
        torch.testing.assert_close(_out(unet), lora, atol=1e-5, rtol=1e-5)


def test_two_adapters_add_with_their_weights():
    base = _unet()
    unet = copy.deepcopy(base)
    names = _targets(unet)
    inject_lora(unet, names, r=2, lora_alpha=2.0, adapter_name="a")
    inject_lora(unet, names[:4], r=3, lora_alpha=1.5, adapter_name="b")
    _randomize(unet, 2, "a")
    _randomize(unet, 3, "b")
    set_adapters(unet, ["a", "b"], [0.7, -1.2])
    both = _out(unet)
    with torch.no_grad():
        for name, layer in lora_layers(unet).items():
            delta = 0.7 * layer.delta_weight("a")
            if "b" in layer.r:
                delta += -1.2 * layer.delta_weight("b")
            base.get_submodule(name).weight += delta
    torch.testing.assert_close(both, _out(base), atol=1e-4, rtol=1e-4)
    set_adapters(unet, ["b"])
    only_b = _out(unet)
    assert not torch.allclose(only_b, both, atol=1e-3)
    with pytest.raises(HwaksanError, match="no LoRA named 'c'"):
        set_adapters(unet, ["c"])


def _trained_pipe() -> Pipeline:
    pipe = _pipe()
    inject_lora(pipe.unet, _targets(pipe.unet), r=2, lora_alpha=3.0)
    inject_lora(pipe.text_encoder, lora_target_names(pipe.text_encoder), r=2, lora_alpha=3.0)
    _randomize(pipe.unet)
    _randomize(pipe.text_encoder, 4)
    return pipe


def _images(pipe: Pipeline, **inputs) -> torch.Tensor:
    return pipe.generate(2, prompt="a red circle", seed=0, output_type="pt", **inputs)


def test_our_file_round_trips_through_pipelines_and_lora_scale(tmp_path):
    trained, fresh = _trained_pipe(), _pipe()
    plain = _images(fresh)
    file = trained.save_lora_weights(tmp_path / "lora")
    assert file.name == "pytorch_lora_weights.safetensors"
    with pytest.raises(HwaksanError, match="holds a LoRA; load it onto a model with"):
        hk.load(tmp_path / "lora")
    tensors, metadata = read_lora_file(tmp_path / "lora")
    assert "unet.down.2.attn.blocks.0.attn1.to_q.lora_A.weight" in tensors
    assert '"unet.lora_alpha": 3.0' in metadata["lora_adapter_metadata"]
    assert fresh.load_lora_weights(file) == "default_0"
    assert torch.equal(_images(fresh), _images(trained))
    assert not torch.equal(_images(fresh), plain)
    fresh.set_adapters(["default_0"], [0.0])  # the U-Net and the text encoder: the base
    assert torch.equal(_images(fresh), plain)
    fresh.set_adapters("default_0")
    fresh.fuse_lora()
    torch.testing.assert_close(_images(fresh), _images(trained), atol=1e-4, rtol=1e-4)
    fresh.unfuse_lora()
    with pytest.raises(HwaksanError, match="carries LoRA layers: save them with"):
        fresh.save(tmp_path / "model")
    fresh.fuse_lora()
    fused = _images(fresh)
    fresh.unload_lora_weights()  # after fuse_lora: the LoRA stays baked into the weights
    assert not lora_layers(fresh.unet) and torch.equal(_images(fresh), fused)
    fresh.save(tmp_path / "baked")
    assert torch.equal(_images(hk.load(tmp_path / "baked")), fused)
    clean = _pipe()
    clean.load_lora_weights(file, adapter_name="x")
    clean.unload_lora_weights()
    assert not lora_layers(clean.unet) and torch.equal(_images(clean), plain)


def test_generate_lora_scale_zero_is_the_base(tmp_path):
    pipe = _pipe()
    plain = _images(pipe)
    inject_lora(pipe.unet, _targets(pipe.unet), r=2, lora_alpha=2.0)
    _randomize(pipe.unet)
    assert torch.equal(_images(pipe, lora_scale=0.0), plain)
    assert not torch.equal(_images(pipe, lora_scale=1.0), plain)
    with pytest.raises(HwaksanError, match="lora_scale must be a finite number"):
        _images(pipe, lora_scale=float("nan"))


@pytest.mark.parametrize("writer", [to_peft_keys, to_kohya_keys, to_old_diffusers_keys])
def test_every_key_format_reads_back_to_the_same_lora(writer):
    trained = _trained_pipe()
    if writer is to_old_diffusers_keys:  # that format has no alpha: alpha = rank, scale 1
        for module in (trained.unet, trained.text_encoder):
            for layer in lora_layers(module).values():
                layer.lora_alpha["default"] = float(layer.r["default"])
    weights = lora_weights({"unet": trained.unet, "text_encoder": trained.text_encoder})
    components = {"unet": _unet(), "text_encoder": _pipe().text_encoder}
    metadata = None  # peft's keys keep alpha in diffusers' metadata, kohya's in ".alpha" tensors
    if writer is to_peft_keys:
        metadata = {"lora_adapter_metadata": json.dumps(adapter_metadata(weights))}
    back = canonical(writer(weights), metadata, components)
    assert set(back) == set(weights)
    for layer, w in weights.items():
        assert torch.equal(back[layer].down, w.down) and torch.equal(back[layer].up, w.up)
        assert (back[layer].alpha or back[layer].rank) == w.alpha


def test_kohya_names_resolve_on_a_model_that_wraps_the_unet(tmp_path):
    from safetensors.torch import save_file

    trained = _trained_pipe()
    weights = lora_weights({"unet": trained.unet})
    save_file(to_kohya_keys(weights), str(tmp_path / "kohya.safetensors"))

    class Wrapped(nn.Module):  # e.g. a diffusers U-Net behind an import wrapper
        def __init__(self, unet):
            super().__init__()
            self.model = unet

        def forward(self, x, t, **cond):
            return self.model(x, t, **cond)

    wrapped = _pipe()
    wrapped.unet = Wrapped(wrapped.unet)
    wrapped.load_lora_weights(tmp_path / "kohya.safetensors", adapter_name="k")
    assert "model.down.2.res.skip" in lora_layers(wrapped.unet)
    assert torch.equal(_out(wrapped.unet), _out(trained.unet))


def test_our_file_loaded_by_peft_gives_the_same_outputs(tmp_path):
    import peft  # a test dependency (the "test" extra)
    from peft.utils import set_peft_model_state_dict

    pipe = _pipe()
    inject_lora(pipe.unet, _targets(pipe.unet), r=2, lora_alpha=5.0)
    _randomize(pipe.unet)
    tensors, _ = read_lora_file(pipe.save_lora_weights(tmp_path))
    theirs = _unet()
    config = peft.LoraConfig(r=2, lora_alpha=5.0, target_modules=_targets(theirs))
    theirs = peft.inject_adapter_in_model(config, theirs)
    state = {k.removeprefix("unet."): v for k, v in tensors.items()}
    result = set_peft_model_state_dict(theirs, state)
    assert not [k for k in result.unexpected_keys if "lora" in k]
    torch.testing.assert_close(_out(theirs), _out(pipe.unet), atol=1e-5, rtol=1e-5)
    # and back: peft's own state dict (its names, no component prefix) loads onto ours
    from peft.utils import get_peft_model_state_dict

    ours = _pipe()
    from safetensors.torch import save_file

    save_file(get_peft_model_state_dict(theirs), str(tmp_path / "peft.safetensors"))
    ours.load_lora_weights(tmp_path / "peft.safetensors")
    for layer in lora_layers(ours.unet).values():  # no metadata: alpha = rank, as peft reads it
        layer.lora_alpha["default_0"] = 5.0
    torch.testing.assert_close(_out(ours.unet), _out(theirs), atol=1e-5, rtol=1e-5)


def test_a_lora_for_another_base_or_no_file_is_a_one_line_error(tmp_path):
    wide = _pipe(width=32)
    inject_lora(wide.unet, _targets(wide.unet), r=2, lora_alpha=2.0)
    wide.save_lora_weights(tmp_path / "wide")
    pipe = _pipe()
    with pytest.raises(HwaksanError, match=r"another base model: .*to_k.lora_A is \(2, 32\)"):
        pipe.load_lora_weights(tmp_path / "wide")
    assert not lora_layers(pipe.unet)  # nothing half-done
    from safetensors.torch import save_file

    save_file({"lora_unet_encoder_blocks_9_ffn.lora_down.weight": torch.zeros(2, 4),
               "lora_unet_encoder_blocks_9_ffn.lora_up.weight": torch.zeros(4, 2)},
              str(tmp_path / "other.safetensors"))  # fmt: skip
    with pytest.raises(HwaksanError, match="another base model: its layer unet.encoder_blocks_9"):
        pipe.load_lora_weights(tmp_path / "other.safetensors")
    with pytest.raises(HwaksanError, match="no LoRA file at"):
        pipe.load_lora_weights(tmp_path / "missing.safetensors")
    with pytest.raises(HwaksanError, match="holds no .safetensors"):
        pipe.load_lora_weights(tmp_path / "empty_dir_" if (tmp_path / "empty_dir_").mkdir()
                               is None else None)  # fmt: skip
    with pytest.raises(HwaksanError, match="carries no LoRA"):
        pipe.save_lora_weights(tmp_path / "none")


def test_diffusers_reads_our_file_and_we_read_its_file(tmp_path):
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin as Loader

    from hwaksan.nets.adapters import lora_state_dict

    trained = _trained_pipe()
    trained.save_lora_weights(tmp_path / "ours")
    state, *_, metadata = Loader.lora_state_dict(tmp_path / "ours", return_lora_metadata=True)
    assert state.keys() == read_lora_file(tmp_path / "ours")[0].keys()
    assert metadata["unet.r"] == 2 and metadata["unet.lora_alpha"] == 3.0
    Loader.save_lora_weights(tmp_path / "theirs", unet_lora_layers=lora_state_dict(trained.unet),
                             unet_lora_adapter_metadata={"r": 2, "lora_alpha": 3.0,
                                                         "target_modules": ["to_q"]})  # fmt: skip
    fresh = _pipe()
    fresh.load_lora_weights(tmp_path / "theirs")
    assert torch.equal(_out(fresh.unet), _out(trained.unet))  # alpha 3 (not r = 2) came through


def test_kohya_file_for_a_diffusers_unet_loads_onto_it_behind_a_wrapper(tmp_path):
    """Kohya's underscored names against diffusers' real module names (`to_out.0`, `proj_in`):
    the update lands where merging it by hand puts it."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, cross_attention_dim=8, attention_head_dim=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).eval()  # fmt: skip
    names = [n for n, m in unet.named_modules() if n.endswith(("to_q", "to_out.0", "proj_in"))]
    g = torch.Generator().manual_seed(1)
    tensors, merged = {}, copy.deepcopy(unet)
    for name in names:
        weight = unet.get_submodule(name).weight  # (out, in) or, proj_in, (out, in, 1, 1)
        kernel = weight.shape[2:]  # kohya keeps a 1x1 convolution's LoRA 4-D
        down = torch.randn(2, weight.shape[1], *kernel, generator=g)  # (2, in[, 1, 1])
        up = torch.randn(weight.shape[0], 2, *kernel, generator=g)  # (out, 2[, 1, 1])
        key = "lora_unet_" + name.replace(".", "_")
        tensors.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                        f"{key}.alpha": torch.tensor(1.0)})  # fmt: skip
        delta = up.flatten(1) @ down.flatten(1)  # (out, in)
        with torch.no_grad():  # alpha / r = 1 / 2
            merged.get_submodule(name).weight += 0.5 * delta.reshape(weight.shape)
    save_file(tensors, str(tmp_path / "kohya.safetensors"))

    class Imported(nn.Module):  # another engineer's wrapper around a diffusers U-Net
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

    from hwaksan.nets.adapters import load_lora_onto

    wrapped = Imported(unet)
    tensors, metadata = read_lora_file(tmp_path / "kohya.safetensors")
    loaded = load_lora_onto({"unet": wrapped}, tensors, metadata, "k")
    assert sorted(loaded) == sorted(f"unet.inner.{n}" for n in names)
    x, t, context = torch.randn(1, 3, 8, 8), torch.tensor([5]), torch.randn(1, 3, 8)
    with torch.no_grad():
        ours, by_hand = unet(x, t, context).sample, merged(x, t, context).sample
    torch.testing.assert_close(ours, by_hand, atol=1e-4, rtol=1e-4)
