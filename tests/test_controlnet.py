"""ControlNet (Zhang et al. 2023): a fresh one (zero convolutions) or scale 0 leaves the base's
output bit-identical; the control image reaches the network; training changes only the
ControlNet; its adapter folder round-trips and is refused in one line where it does not fit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import hwaksan as hk
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.adapters.controlnet_folder import save_controlnet
from hwaksan.nets.controlnet import ControlNet, ControlNetConfig
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.pipeline import Pipeline
from hwaksan.train.controlnet import ControlData, ControlNetRecipe
from hwaksan.train.loop import TrainConfig, train


def _unet(channels=(16, 32)) -> nn.Module:
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=channels, norm_groups=8, num_heads=2,
                      attention_resolutions=(4,), context_dim=16)  # fmt: skip
    for name, p in unet.named_parameters():
        if "conv_out" in name or "proj_out" in name or "conv2" in name:
            nn.init.normal_(p, std=0.1)  # a base whose output depends on every path
    return unet.eval().requires_grad_(False)


def _pipe() -> Pipeline:
    torch.manual_seed(1)
    text = MiniCLIPTextConfig(vocab=shapes_vocabulary(), max_length=8, width=16, layers=1, heads=2)
    return Pipeline(unet=_unet(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=3,
                    text_encoder=MiniCLIPTextModel(text).eval().requires_grad_(False))  # fmt: skip


def _controlnet(unet) -> ControlNet:
    return ControlNet.from_unet(unet, hint_channels=())  # 8 px control maps for an 8 px U-Net


def _randomize_zero_convs(controlnet: ControlNet) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in controlnet.named_parameters():
            if name.startswith(("controlnet_", "hint_encoder.conv_out")):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _control(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((8, 8, 3)) > 0.5).astype(np.uint8) * 255)


def _generate(pipe, **inputs) -> torch.Tensor:
    return pipe.generate(2, seed=0, prompt="a red circle", guidance_scale=3.0, output_type="pt",
                         progress=False, **inputs)  # fmt: skip


def test_the_copy_starts_as_the_base_encoder_and_its_residuals_at_zero():
    unet = _unet()
    controlnet = _controlnet(unet)
    x, t, context = torch.randn(2, 3, 8, 8), torch.tensor([5, 50]), torch.randn(2, 4, 16)
    hint = torch.rand(2, 3, 8, 8)
    down, mid = controlnet(x, t, hint, context=context)
    assert [d.shape[1] for d in down] == unet.skip_channels
    assert all(torch.equal(d, torch.zeros_like(d)) for d in [*down, mid])
    base_skips = unet.encode(x, t, context=context).skips
    copy_skips = controlnet.encoder.encode(x, t, context=context).skips  # no hint: the base's
    assert all(torch.equal(a, b) for a, b in zip(base_skips, copy_skips))


def test_a_fresh_controlnet_and_scale_zero_leave_the_base_bit_identical():
    pipe = _pipe()
    base = _generate(pipe)
    pipe.load_controlnet(_controlnet(pipe.unet))
    assert torch.equal(_generate(pipe, control_image=_control(0)), base)  # zero convs
    _randomize_zero_convs(pipe.controlnet)
    steered = _generate(pipe, control_image=_control(0))
    assert not torch.allclose(steered, base, atol=1e-3)
    at_zero = _generate(pipe, control_image=_control(0), controlnet_conditioning_scale=0.0)
    assert torch.equal(at_zero, base)


def test_the_control_image_reaches_the_network():
    pipe = _pipe()
    pipe.load_controlnet(_controlnet(pipe.unet))
    _randomize_zero_convs(pipe.controlnet)
    a = _generate(pipe, control_image=_control(0))
    b = _generate(pipe, control_image=_control(1))
    assert (a - b).abs().max() > 1e-3
    tensor = torch.from_numpy(np.array(_control(0))).permute(2, 0, 1).float() / 255
    assert torch.equal(_generate(pipe, control_image=tensor), a)  # a [0, 1] tensor is the same
    half = _generate(pipe, control_image=_control(0), controlnet_conditioning_scale=0.5)
    assert not torch.allclose(half, a, atol=1e-4)


def test_training_changes_only_the_controlnet(tmp_path):
    pipe = _pipe()
    frozen = copy.deepcopy(pipe.unet.state_dict())
    controlnet = _controlnet(pipe.unet)
    start = copy.deepcopy(controlnet.state_dict())
    g = torch.Generator().manual_seed(0)
    data = ControlData(torch.randn(8, 3, 8, 8, generator=g), torch.rand(8, 8, 8, generator=g) > 0.5,
                       [(i, "a red circle") for i in range(8)])  # fmt: skip
    snapshots = []
    recipe = ControlNetRecipe(
        pipe.unet, controlnet, pipe.schedule, pipe.text_encoder, prediction_type="v_prediction",
        captions=data.captions, snapshot=lambda net, step: snapshots.append(step),
        snapshot_every=2,
    )  # fmt: skip
    assert recipe.trainable is controlnet
    torch.manual_seed(0)
    dropped = recipe.conditioner.drop({"caption": ["a red circle"] * 2000})["caption"]
    assert 0.45 < dropped.count("") / 2000 < 0.55  # half the prompts empty (sec. 3.3)
    config = TrainConfig(out_dir=str(tmp_path), steps=4, batch_size=4, lr=1e-2, ema_decay=None,
                         progress=False)  # fmt: skip
    assert train(recipe, data, config).step == 4 and snapshots == [2, 4]
    assert all(torch.equal(frozen[k], v) for k, v in pipe.unet.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in pipe.unet.parameters())
    changed = [k for k, v in controlnet.state_dict().items() if not torch.equal(start[k], v)]
    assert any(k.startswith("controlnet_down_blocks") for k in changed)
    assert any(k.startswith("encoder.") for k in changed)


def test_save_and_load_round_trip(tmp_path):
    pipe = _pipe()
    controlnet = _controlnet(pipe.unet)
    _randomize_zero_convs(controlnet)
    save_controlnet(tmp_path / "cn32", controlnet, dtype=torch.float32, control="segmentation")
    save_controlnet(tmp_path / "cn16", controlnet)  # fp16, as shipped
    pipe.load_controlnet(controlnet)
    want = _generate(pipe, control_image=_control(0))
    loaded = copy.deepcopy(pipe)
    loaded.load_controlnet(tmp_path / "cn32")
    assert loaded.controlnet is not controlnet
    assert torch.equal(_generate(loaded, control_image=_control(0)), want)
    loaded.load_adapter(tmp_path / "cn16")  # the generic adapter loader attaches it too
    for k, v in controlnet.state_dict().items():
        assert torch.equal(loaded.controlnet.state_dict()[k], v.half().float())
    assert sum(isinstance(p, type(pipe.parts[0])) for p in loaded.parts) == 1  # replaced


def test_bad_input_is_one_line(tmp_path):
    pipe = _pipe()
    with pytest.raises(HwaksanError, match="unknown input"):
        _generate(pipe, control_image=_control(0))  # no ControlNet attached
    pipe.load_controlnet(_controlnet(pipe.unet))
    with pytest.raises(HwaksanError, match="needs control_image"):
        _generate(pipe)
    with pytest.raises(HwaksanError, match="control image is 16x16 px.*8x8"):
        _generate(pipe, control_image=Image.new("RGB", (16, 16)))
    with pytest.raises(HwaksanError, match="one image or 2"):
        _generate(pipe, control_image=[_control(0)] * 3)
    with pytest.raises(HwaksanError, match="no adapter folder"):
        pipe.load_controlnet(tmp_path / "missing")
    other = ControlNet.from_unet(_unet(channels=(16, 16)), hint_channels=())
    save_controlnet(tmp_path / "other", other)
    with pytest.raises(HwaksanError, match="ControlNet for another base model"):
        pipe.load_controlnet(tmp_path / "other")
    with pytest.raises(HwaksanError, match="another base"):
        pipe.load_controlnet(other)
    with pytest.raises(HwaksanError, match="hint halvings"):
        ControlNet(ControlNetConfig(unet=pipe.unet.config, conditioning_resolution=24))


def test_a_controlnet_and_a_lora_attach_to_one_pipeline(tmp_path):
    from hwaksan.nets.adapters import inject_lora, lora_target_names

    pipe = _pipe()
    inject_lora(pipe.unet, lora_target_names(pipe.unet), r=2, lora_alpha=2.0)
    with torch.no_grad():
        for name, p in pipe.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    with_lora = _generate(pipe)
    config = ControlNetConfig(unet=pipe.unet.config, conditioning_resolution=8, hint_channels=())
    pipe.load_controlnet(ControlNet(config))  # a random copy: the zero convolutions decide
    assert torch.equal(_generate(pipe, control_image=_control(0)), with_lora)  # zero convs
    _randomize_zero_convs(pipe.controlnet)
    assert not torch.allclose(_generate(pipe, control_image=_control(0)), with_lora, atol=1e-3)
