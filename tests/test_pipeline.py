"""Saved models: a folder round trip gives the same samples; bad folders fail in one line."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import hwaksan as hk
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Pipeline


def _unet(seed: int) -> UNet:
    torch.manual_seed(seed)
    unet = UNet(unet_tiny(in_channels=1, resolution=8, num_classes=3, attention_resolutions=()))
    with torch.no_grad():  # a random init outputs zeros (zero-initialized out conv); perturb it
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unet.eval()


def _pipe(seed: int = 0) -> Pipeline:
    return Pipeline(
        unet=_unet(seed), schedule=hk.NoiseSchedule.cosine(100), prediction_type="v_prediction",
        image_shape=(1, 8, 8), num_classes=3, steps=4, class_names=["a", "b", "c"],
    )  # fmt: skip


def test_save_load_round_trip_gives_identical_samples(tmp_path):
    pipe = _pipe()
    pipe.save(tmp_path / "m", unet_ema=_unet(seed=1))
    raw = hk.load(tmp_path / "m", use_ema=False)
    ema = hk.load(tmp_path / "m")
    labels = [0, 1, 2, 0]
    before = pipe.generate(4, seed=3, class_labels=labels, output_type="pt")
    assert torch.equal(raw.generate(4, seed=3, class_labels=labels, output_type="pt"), before)
    assert not torch.equal(ema.generate(4, seed=3, class_labels=labels, output_type="pt"), before)
    assert ema.class_names == ["a", "b", "c"] and ema.num_classes == 3
    images = ema.generate(4, seed=3, class_labels=labels)
    assert len(images) == 4 and images[0].size == (8, 8) and images[0].mode == "L"


def test_generate_is_seeded_and_batch_independent():
    pipe = _pipe()
    a = pipe.generate(5, seed=7, class_labels=[1], output_type="pt")
    b = pipe.generate(5, seed=7, class_labels=[1], output_type="pt", batch_size=2)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # batch size changes conv kernels
    assert not torch.equal(a, pipe.generate(5, seed=8, class_labels=[1], output_type="pt"))
    assert a.shape == (5, 1, 8, 8) and a.min() >= -1 and a.max() <= 1


def test_guidance_scale_one_is_plain_conditional_and_larger_moves_samples():
    pipe = _pipe()
    plain = pipe.generate(3, seed=0, class_labels=[0, 1, 2], output_type="pt")
    one = pipe.generate(3, seed=0, class_labels=[0, 1, 2], guidance_scale=1.0, output_type="pt")
    assert torch.equal(plain, one)
    guided = pipe.generate(3, seed=0, class_labels=[0, 1, 2], guidance_scale=3.0, output_type="pt")
    assert torch.isfinite(guided).all() and (guided - plain).abs().max() > 1e-3
    with pytest.raises(HwaksanError, match="class_labels"):
        pipe.generate(3, class_labels=[0, 5, 1])


def test_fp16_weights_load_into_fp32(tmp_path):
    pipe = _pipe()
    pipe.save(tmp_path / "m", dtype=torch.float16)
    loaded = hk.load(tmp_path / "m")
    for a, b in zip(pipe.unet.parameters(), loaded.unet.parameters()):
        assert b.dtype == torch.float32
        torch.testing.assert_close(a.half().float(), b, rtol=0, atol=0)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    _pipe().save(tmp_path / "m")

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    hk.load(tmp_path / "m").generate(1, class_labels=[0])


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return config


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_config", "config.json is missing"),
        ("bad_json", "not valid JSON"),
        ("other_kind", "not a hwaksan model config"),
        ("no_weights", "weights are missing"),
        ("other_shape", "does not match config.json"),
        ("bad_unet_key", "invalid unet config|unknown UNet config keys"),
    ],
)
def test_broken_folders_fail_clearly(tmp_path, breakage, message):
    folder = tmp_path / "m"
    _pipe().save(folder)
    if breakage == "no_config":
        (folder / "config.json").unlink()
    elif breakage == "bad_json":
        (folder / "config.json").write_text("{not json")
    elif breakage == "other_kind":
        _edit_config(folder, model_kind="someone.else")
    elif breakage == "no_weights":
        (folder / "unet.safetensors").unlink()
    elif breakage == "other_shape":
        unet = json.loads((folder / "config.json").read_text())["unet"]
        _edit_config(folder, unet={**unet, "channels": [16, 32], "norm_groups": 8})
    elif breakage == "bad_unet_key":
        unet = json.loads((folder / "config.json").read_text())["unet"]
        _edit_config(folder, unet={**unet, "wings": 2})
    with pytest.raises(HwaksanError, match=message):
        hk.load(folder)


def test_unknown_names_and_paths_fail_clearly(tmp_path):
    with pytest.raises(HwaksanError, match="shipped names are digits, shapes"):
        hk.load("no-such-model")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(HwaksanError, match="is a file"):
        hk.load(tmp_path / "file.txt")


def test_shipped_models_load_and_make_what_they_claim():
    """A quick look at the shipped models (benchmarks/shipped_scores.py measures them fully)."""
    from hwaksan.data import shapes
    from hwaksan.eval.digits_score import digits_accuracy
    from hwaksan.eval.shapes_score import validity_coverage

    digits = hk.load("digits")
    labels = [i % 10 for i in range(30)]
    images = digits.generate(30, steps=20, seed=1, class_labels=labels, output_type="pt")
    assert digits_accuracy(images, labels) >= 0.9
    world = hk.load("shapes")
    images = world.generate(32, steps=20, seed=1, output_type="pt")
    config = shapes.ShapesConfig(**world.data["shapes_config"])
    assert validity_coverage(images, config)["validity"] >= 0.75
    scenes = hk.load("shapes32")  # 1-3 objects at 32 px: 29 of 32 valid at DDIM-20 when shipped
    images = scenes.generate(32, steps=20, seed=1, output_type="pt")
    config = shapes.ShapesConfig.from_dict(scenes.data["shapes_config"])
    assert config.max_objects == 3 and validity_coverage(images, config)["validity"] >= 0.75
    student = hk.load("shapes32_pd")  # its own sampler and 4 steps: 82% valid on 500 when shipped
    assert (student.sampler, student.steps) == ("euler", 4)
    images = student.generate(32, seed=1, output_type="pt")
    assert validity_coverage(images, config)["validity"] >= 0.6
    # the consistency students sample with their own sampler; on 500: CD-4 77.8% valid, CT-8
    # 20.8% (the teacher's own DDIM-2 makes 0.4%)
    for name, steps, floor in (("shapes32_cd", 4, 0.6), ("shapes32_ct", 8, 0.1)):
        student = hk.load(name)
        assert (student.sampler, student.steps) == ("consistency", 1)
        images = student.generate(32, steps=steps, seed=1, output_type="pt", progress=False)
        assert validity_coverage(images, config)["validity"] >= floor, name


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(sampler="euler", eta=0.5), "eta is a DDIM option"),
        (dict(sampler="plms"), "unknown sampler"),
        (dict(steps=5000), "steps must be between"),
    ],
)
def test_bad_sampler_arguments_are_one_line_user_errors(kwargs, message):
    pipe = hk.load("shapes")
    with pytest.raises(HwaksanError, match=message):
        pipe.generate(1, **kwargs)
