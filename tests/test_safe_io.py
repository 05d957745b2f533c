"""Saving never deletes what it did not write; non-finite numbers never become an image (NaN or
inf weights fail on load, a non-finite sample is an error naming the step); 16-bit PNGs read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import hwaksan as hk
from hwaksan import components
from hwaksan.data.folder import load_image
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Pipeline


def _pipe() -> Pipeline:
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=1, resolution=8, attention_resolutions=()))
    return Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="epsilon", image_shape=(1, 8, 8), steps=3)  # fmt: skip


def _user_files(folder):
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "data").mkdir()
    (folder / "data" / "a.png").write_bytes(b"png")


def test_save_refuses_a_folder_that_is_not_a_hwaksan_folder(tmp_path):
    folder = tmp_path / "mine"
    _user_files(folder)
    with pytest.raises(HwaksanError, match=r"not a hwaksan folder \(it holds data, thesis.txt\)"):
        _pipe().save(folder)
    assert (folder / "thesis.txt").read_text() == "three years of work"
    assert (folder / "data" / "a.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary left either
    (tmp_path / "file").write_text("x")
    with pytest.raises(HwaksanError, match="not a folder"):
        _pipe().save(tmp_path / "file")


def test_saving_over_a_hwaksan_folder_keeps_the_files_it_did_not_write(tmp_path):
    folder = tmp_path / "model"
    _pipe().save(folder, unet_ema=_pipe().unet)
    (folder / "README.md").write_text("my notes")
    _pipe().save(folder)  # no EMA this time: the stale unet_ema goes, the notes stay
    assert (folder / "README.md").read_text() == "my notes"
    assert not (folder / "unet_ema.safetensors").exists()
    hk.load(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    _pipe().save(empty)  # an empty folder is fine
    hk.load(empty)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_fail_on_load(tmp_path, bad):
    pipe = _pipe()
    with torch.no_grad():
        pipe.unet.conv_out.weight[0, 0, 0, 0] = bad
    pipe.save(tmp_path / "model")
    with pytest.raises(HwaksanError, match=r"non-finite values \(NaN or inf\) in conv_out.weight"):
        hk.load(tmp_path / "model")


def test_a_non_finite_sample_is_an_error_naming_the_step():
    def model(x, t):
        return torch.where(t[:, None, None, None] < 500, x * float("nan"), x)

    schedule = hk.NoiseSchedule.cosine(1000)
    with pytest.raises(HwaksanError, match=r"model's output became non-finite .* t=4\d\d"):
        hk.sample(model, (1, 1, 4, 4), schedule=schedule, steps=10, timestep_spacing="leading")
    eta = float("nan")  # a NaN that reaches x, not the model's output
    with pytest.raises(HwaksanError, match=r"the sample became non-finite"):
        hk.sample(lambda x, t: 0 * x, (1, 1, 4, 4), schedule=schedule, steps=3, eta=eta)


def test_a_16_bit_png_reads_scaled_not_white(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    image = load_image(tmp_path / "deep.png", 16).float()  # [3, 16, 16] uint8
    expected = torch.from_numpy(np.round(ramp / 257.0)).float()
    assert torch.allclose(image[0], expected, atol=1) and torch.equal(image[0], image[2])
    assert 120 < image.mean() < 135  # was 254 (99.6% white) when clipped


def test_write_folder_cleans_up_after_a_failed_write(tmp_path):
    class Broken(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        components.write_folder(tmp_path / "x", {"model_kind": "hwaksan.adapter"}, {"w": Broken()})
    assert list(tmp_path.iterdir()) == []
