"""Concatenated conditions (`nets.conditions`): super-resolution's low-res image and the
inpainting model's mask reach the network, in training and in `generate`; their folders
save and load."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import hwaksan as hk
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, conditions, unet_tiny
from hwaksan.pipeline import Pipeline
from hwaksan.train.concat import RandomMasks, SuperResolution, random_box_masks
from hwaksan.train.conditioners import Unconditional
from hwaksan.train.diffusion import DiffusionRecipe

SR = conditions.super_resolution(4, noise_levels=5, max_noise=0.4)


def _unet(concat_channels: int, num_classes=None) -> UNet:
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=3, resolution=8, attention_resolutions=(),
                          concat_channels=concat_channels, num_classes=num_classes))  # fmt: skip
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unet.eval()


def _sr_pipe() -> Pipeline:
    return Pipeline(unet=_unet(3, num_classes=5), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), num_classes=5,
                    steps=4, condition=SR)  # fmt: skip


class Spy:
    """Records what reaches the U-Net's `concat` and `class_labels`."""

    def __init__(self, unet):
        self.calls = []
        self.handle = unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        self.calls.append((kwargs.get("concat"), args[2] if len(args) > 2 else None))


def test_the_low_res_image_reaches_the_network_upsampled_at_its_noise_level():
    pipe, low = _sr_pipe(), torch.rand(2, 3, 4, 4) * 2 - 1
    spy = Spy(pipe.unet)
    pipe.generate(2, image=low, output_type="pt")  # noise level 0: no augmentation
    want = F.interpolate(low, size=(8, 8), mode="bicubic", align_corners=False)
    assert len(spy.calls) == 4
    assert all(torch.allclose(c, want) for c, _ in spy.calls)
    spy.calls.clear()
    pipe.generate(2, image=low, noise_level=4, output_type="pt")
    concat, _ = spy.calls[0]
    residual = concat - F.interpolate((1 - 0.4**2) ** 0.5 * low, size=(8, 8), mode="bicubic")
    assert 0.2 < residual.std() < 0.6  # sigma 0.4 noise, smoothed a little by the upsampling


def test_the_noise_level_is_the_class_label_and_the_image_changes_the_output():
    pipe, low = _sr_pipe(), torch.rand(1, 3, 4, 4) * 2 - 1
    labels = []
    pipe.unet.register_forward_pre_hook(lambda m, a, k: labels.append(k.get("class_labels")),
                                        with_kwargs=True)  # fmt: skip
    a = pipe.generate(1, image=low, noise_level=2, output_type="pt")
    assert all(int(x) == 2 for x in torch.cat(labels))
    b = pipe.generate(1, image=-low, noise_level=2, output_type="pt")
    assert (a - b).abs().max() > 1e-3


def test_space_to_depth_keeps_every_low_res_pixel():
    low = torch.rand(2, 3, 16, 16)
    folded = conditions.low_res_concat(low, 8)
    assert folded.shape == (2, 12, 8, 8) and torch.equal(F.pixel_shuffle(folded, 2), low)


def test_training_feeds_the_augmented_low_res_to_the_network():
    """The recipe's loss has a gradient on the concat channels' input weights: the condition is
    in the forward pass; each batch's levels are drawn from all of them."""
    unet = _unet(3, num_classes=5).train()
    conditioner = SuperResolution(SR, 8, 3, torch.zeros(4, 3, 4, 4))
    recipe = DiffusionRecipe(unet, hk.NoiseSchedule.cosine(100), (3, 8, 8),
                             conditioner=conditioner)  # fmt: skip
    batch = {"image": torch.rand(64, 3, 8, 8) * 2 - 1, "low_res": torch.rand(64, 3, 4, 4)}
    torch.manual_seed(0)
    loss, _ = recipe.loss(unet, batch, 0)
    loss.backward()
    grad = unet.conv_in.weight.grad[:, 3:]  # (C0, concat_channels, 3, 3)
    assert grad.abs().sum() > 0
    big = {"image": torch.zeros(4000, 3, 8, 8), "low_res": torch.zeros(4000, 3, 4, 4)}
    levels = conditioner.drop(big)["noise_level"]
    assert set(levels.tolist()) == set(range(5))
    assert 0.45 < (levels == 0).float().mean() < 0.55  # clean_prob 0.5: sampling's level 0
    with pytest.raises(HwaksanError, match="concat_channels=3"):
        DiffusionRecipe(_unet(0, 5), hk.NoiseSchedule.cosine(100), (3, 8, 8),
                        conditioner=conditioner)  # fmt: skip


def test_random_masks_and_the_inpainting_input():
    torch.manual_seed(0)
    masks = random_box_masks(2000, 16, full_prob=0.25)
    full = (masks.flatten(1).mean(1) == 1).float().mean()
    assert 0.22 < full < 0.32  # the full masks, plus the boxes that happen to cover all
    sizes = masks.flatten(1).mean(1)
    assert sizes.min() >= (4 * 4) / 256
    x0, keep = torch.randn(3, 4, 8, 8), (torch.rand(3, 1, 8, 8) > 0.5).float()
    concat = conditions.inpainting_concat(x0, keep)
    assert torch.equal(concat[:, :1], 1 - keep) and torch.equal(concat[:, 1:], x0 * keep)


def test_the_inpainting_model_reads_the_mask_and_the_masked_sample():
    unet = _unet(4).train()
    recipe = DiffusionRecipe(unet, hk.NoiseSchedule.cosine(100), (3, 8, 8),
                             conditioner=RandomMasks(Unconditional(), (3, 8, 8)))  # fmt: skip
    loss, _ = recipe.loss(unet, {"image": torch.rand(16, 3, 8, 8)}, 0)
    loss.backward()
    assert unet.conv_in.weight.grad[:, 3:].abs().sum() > 0
    pipe = Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100), steps=3,
                    prediction_type="v_prediction", image_shape=(3, 8, 8),
                    condition=conditions.inpainting())  # fmt: skip
    spy = Spy(pipe.unet)
    image, mask = torch.rand(1, 3, 8, 8) * 2 - 1, torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    out = pipe.generate(1, image=image, mask_image=mask, output_type="pt")
    want = conditions.inpainting_concat(image, 1 - mask)
    assert all(torch.equal(c, want) for c, _ in spy.calls)
    assert torch.equal(out[..., 4:, :], image[..., 4:, :])  # the kept rows, pasted back


def test_a_super_resolution_folder_saves_and_loads(tmp_path):
    pipe, low = _sr_pipe(), torch.rand(1, 3, 4, 4) * 2 - 1
    pipe.save(tmp_path / "sr")
    back = hk.load(tmp_path / "sr", device="cpu")
    assert back.condition == SR
    assert torch.equal(back.generate(1, image=low, output_type="pt"),
                       pipe.generate(1, image=low, output_type="pt"))  # fmt: skip
    config = json.loads((tmp_path / "sr" / "config.json").read_text())
    config["condition"] = {"kind": "super_resolution", "low_res": 4, "noise_levels": 5,
                           "noise_level": 9, "max_noise": 0.4}  # fmt: skip
    (tmp_path / "sr" / "config.json").write_text(json.dumps(config))
    with pytest.raises(HwaksanError, match="condition"):
        hk.load(tmp_path / "sr")


@pytest.mark.parametrize(
    "inputs, match",
    [
        (dict(), "needs image="),
        (dict(image=torch.zeros(1, 3, 8, 8)), r"\(3, 4, 4\)"),
        (dict(image=torch.zeros(1, 3, 4, 4), noise_level=5), "noise_level must be in"),
        (dict(image=torch.zeros(1, 3, 4, 4), strength=0.5), "takes no strength"),
        (dict(image=torch.zeros(1, 3, 4, 4), mask_image=torch.zeros(1, 1, 8, 8)), "not inpaint"),
    ],
)
def test_bad_super_resolution_inputs_are_one_line_errors(inputs, match):
    with pytest.raises(HwaksanError, match=match):
        _sr_pipe().generate(1, **inputs)


def test_init_from_widens_the_input_so_the_inpainting_model_starts_as_the_source(tmp_path):
    """The extra (mask, masked sample) input channels start at zero weight: whatever they hold,
    the grown U-Net predicts what the source did."""
    from hwaksan.runs.diffusion import init_from

    source = Pipeline(unet=_unet(0), schedule=hk.NoiseSchedule.cosine(100),
                      prediction_type="v_prediction", image_shape=(3, 8, 8))  # fmt: skip
    source.save(tmp_path / "src")
    grown = _unet(4)
    init_from(grown, str(tmp_path / "src"))
    x, t, concat = torch.randn(2, 3, 8, 8), torch.tensor([10, 80]), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(grown(x, t, concat=concat), source.unet(x, t), atol=1e-6)


def test_an_inpainting_run_trains_and_its_folder_inpaints(tmp_path):
    from hwaksan.runs.diffusion import DiffusionRun, run_diffusion
    from hwaksan.train.data import TensorItems, TrainingData
    from hwaksan.train.loop import TrainConfig

    images = torch.rand(16, 3, 8, 8) * 2 - 1
    data = TrainingData(TensorItems(images, torch.zeros(16, dtype=torch.long)), 3, 8)
    config = TrainConfig(out_dir=str(tmp_path / "run"), steps=2, batch_size=4, progress=False)
    run = DiffusionRun(preset="tiny", num_train_timesteps=100, sample_steps=2, num_samples=2,
                       inpainting=True, train=config,
                       unet_overrides=dict(channels=(8, 16), norm_groups=4,
                                           attention_resolutions=()))  # fmt: skip
    run_diffusion(run, data)
    pipe = hk.load(tmp_path / "run" / "model", device="cpu")
    assert pipe.condition == conditions.inpainting() and pipe.unet.config.concat_channels == 4
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    out = pipe.generate(1, image=images[:1], mask_image=mask, steps=2, output_type="pt")
    assert torch.equal(out[(mask == 0).expand_as(out)], images[:1][(mask == 0).expand_as(out)])


def test_the_shipped_super_resolution_model_beats_bicubic():
    """shapes_sr on held-out scenes (measured on 100: 33.5 dB against bicubic's 29.5,
    benchmarks/results/super_resolution.md); here 4 scenes, 10 steps."""
    from hwaksan.runs.super_resolution import low_res_images, shapes_scenes

    pipe = hk.load("shapes_sr", device="cpu")
    high = shapes_scenes(64, 4, seed=321).dataset.images
    low = low_res_images(high, 32)
    out = pipe.generate(4, image=low, steps=10, output_type="pt")
    bicubic = F.interpolate(low, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)
    mse_model, mse_bicubic = (out - high).pow(2).mean(), (bicubic - high).pow(2).mean()
    assert mse_model < mse_bicubic / 1.5  # > 1.8 dB better
