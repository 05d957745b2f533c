"""`hwaksan nll` on a tiny saved model: held-out 8-bit data, both variances, one-line errors."""

import json

import pytest
import torch
from click.testing import CliRunner

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.cli.nll import heldout_images
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Pipeline


def _save(folder, learn_sigma: bool) -> Pipeline:
    torch.manual_seed(0)
    config = unet_tiny(
        in_channels=1,
        resolution=8,
        num_classes=10,
        attention_resolutions=(),
        learn_sigma=learn_sigma,
    )
    pipe = Pipeline(
        unet=UNet(config).eval(), schedule=hk.NoiseSchedule.cosine(20), prediction_type="epsilon",
        image_shape=(1, 8, 8), num_classes=10, learn_sigma=learn_sigma, data={"name": "digits"},
    )  # fmt: skip
    pipe.save(folder)
    return pipe


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_nll_command_matches_the_library(tmp_path, learn_sigma):
    """The command's number is nll_bits_per_dim on the held-out digits, null class, same seed."""
    pipe = _save(tmp_path / "m", learn_sigma)
    args = [
        "nll",
        str(tmp_path / "m"),
        "-n",
        "6",
        "--batch-size",
        "6",
        "--batch-of-t",
        "7",
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    x0 = heldout_images("digits", (1, 8, 8), 6)
    levels = (x0.double() + 1) * 127.5
    assert float((levels - levels.round()).abs().max()) < 1e-4  # on the 8-bit grid
    variance_type = "learned_range" if learn_sigma else "fixed_large"
    direct = hk.nll_bits_per_dim(
        pipe.unet, x0, pipe.schedule, variance_type=variance_type,
        cond={"class_labels": torch.full((6,), 10)}, batch_of_t=7,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert summary["images"] == 6
    assert summary["bpd"] == pytest.approx(float(direct["bpd"].mean()), rel=1e-5)
    assert summary["bpd"] > summary["decoder_bpd"] > 0


def test_nll_command_errors_are_one_line(tmp_path):
    _save(tmp_path / "m", False)
    result = CliRunner().invoke(main, ["nll", str(tmp_path / "m"), "--data", "shapes", "-n", "2"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    with pytest.raises(
        HwaksanError, match=r"gives \(3, 16, 16\) images; the model takes \(1, 16, 16\)"
    ):
        heldout_images("shapes", (1, 16, 16), 2)
