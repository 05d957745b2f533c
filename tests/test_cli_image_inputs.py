"""`hwaksan generate --image/--mask/--strength` and `hwaksan upscale` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.images import to_pil
from hwaksan.nets import UNet, conditions, unet_tiny


def _tile(path, side: int) -> np.ndarray:
    """The first tile of a grid written with --scale 1 (one pixel of padding around)."""
    return np.asarray(Image.open(path))[1 : 1 + side, 1 : 1 + side]


@pytest.fixture()
def scene(tmp_path):
    image = to_pil(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    image[0].save(tmp_path / "in.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    return tmp_path


def test_generate_at_strength_0_writes_the_input(scene):
    out = scene / "out.png"
    result = CliRunner().invoke(main, ["generate", "a red circle", "--model", "shapes_t2i",
                                       "--image", str(scene / "in.png"), "--strength", "0",
                                       "-n", "1", "--scale", "1", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (_tile(out, 32) == np.asarray(Image.open(scene / "in.png"))).all()


def test_generate_with_a_mask_keeps_the_rest_of_the_image(scene):
    out = scene / "out.png"
    result = CliRunner().invoke(main, ["generate", "a red circle", "--model", "shapes_t2i",
                                       "--image", str(scene / "in.png"), "--mask",
                                       str(scene / "mask.png"), "--steps", "3", "-n", "1",
                                       "--scale", "1", "--jump-n-sample", "2",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    keep = np.asarray(Image.open(scene / "mask.png")) == 0
    tile, given = _tile(out, 32), np.asarray(Image.open(scene / "in.png"))
    assert (tile[keep] == given[keep]).all() and (tile[~keep] != given[~keep]).any()


def test_an_image_of_the_wrong_size_is_one_error_line(scene):
    Image.new("RGB", (20, 20)).save(scene / "small.png")
    result = CliRunner().invoke(main, ["generate", "a red circle", "--model", "shapes_t2i",
                                       "--image", str(scene / "small.png")])  # fmt: skip
    assert result.exit_code == 2 and "this model needs (3, 32, 32)" in result.stderr


def test_upscale_writes_the_upscaled_images(tmp_path):
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=3, resolution=8, attention_resolutions=(),
                          concat_channels=3, num_classes=5))  # fmt: skip
    pipe = hk.Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                       prediction_type="v_prediction", image_shape=(3, 8, 8), num_classes=5,
                       steps=2, condition=conditions.super_resolution(4, 5))  # fmt: skip
    pipe.save(tmp_path / "sr")
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "small.png")
    out = tmp_path / "big.png"
    args = ["upscale", str(tmp_path / "small.png"), "--model", str(tmp_path / "sr"), "-n", "2",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (2 * 9 + 1, 9 + 1)  # two 8 px tiles, 1 px padding
    Image.new("RGB", (8, 8)).save(tmp_path / "wrong.png")
    result = CliRunner().invoke(main, [*args[:1], str(tmp_path / "wrong.png"), *args[2:]])
    assert result.exit_code == 2 and "upscales 4x4 px" in result.stderr


def test_upscale_picks_the_shipped_model_by_the_images_size(tmp_path):
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=16, min_objects=1, max_objects=1)
    images, _ = shapes.render_batch(1, seed=3, config=config)
    to_pil(images)[0].save(tmp_path / "tiny.png")
    out = tmp_path / "big.png"
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "tiny.png"), "--steps", "2",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0 and "16 -> 64 px" in result.output, result.output
    Image.new("RGB", (20, 20)).save(tmp_path / "odd.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "odd.png")])
    assert result.exit_code == 2 and "16x16 (shapes_sr16), 32x32 (shapes_sr)" in result.stderr
