"""`hwaksan train-controlnet` (a few steps on the shipped shapes_t2i_64, resumable) and
`hwaksan generate --controlnet --control-image`, with their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hwaksan.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step segmentation ControlNet on 6 scenes, snapshot every step."""
    out = tmp_path_factory.mktemp("controlnet") / "run"
    result = CliRunner().invoke(main, [
        "--threads", "1", "train-controlnet", "--scenes", "6", "--steps", "2", "--batch-size",
        "2", "--snapshot-every", "1", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_train_controlnet_writes_an_adapter_folder_and_snapshots(run):
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["adapter_type"] == "controlnet" and config["control"] == "segmentation"
    assert config["base_model"] == "shapes_t2i_64" and config["step"] == 2
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step_000001", "step_000002"]


def test_train_controlnet_resumes(run):
    result = CliRunner().invoke(main, [
        "--threads", "1", "train-controlnet", "--scenes", "6", "--steps", "3", "--batch-size",
        "2", "--snapshot-every", "1", "--out", str(run), "--resume",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 3
    again = CliRunner().invoke(main, ["train-controlnet", "--out", str(run)])
    assert again.exit_code == 2 and "already holds a training run" in again.stderr


def test_generate_with_a_controlnet(run, tmp_path):
    control = tmp_path / "map.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(control)
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, [
        "--threads", "1", "generate", "a red circle", "--model", "shapes_t2i_64", "-n", "1",
        "--steps", "2", "--controlnet", str(run / "model"), "--control-image", str(control),
        "--scale", "1", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (66, 66) and "wrote 1 images" in result.output  # 1 px frame


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--model", "shapes_t2i_64", "--controlnet", "{run}", "--control-image", "{small}"],
         "control image is 32x32 px"),
        (["--model", "shapes_t2i", "--controlnet", "{run}", "--control-image", "{small}"],
         "ControlNet for another base model"),
        (["--model", "shapes_t2i_64", "--controlnet", "{missing}", "--control-image", "{small}"],
         "no adapter folder"),
        (["--model", "shapes_t2i_64", "--controlnet", "{run}", "--control-image", "{missing}"],
         "does not exist"),
    ],
)  # fmt: skip
def test_generate_bad_control_input_is_one_line(run, tmp_path, args, fragment):
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32)).save(small)
    paths = {"run": run / "model", "small": small, "missing": tmp_path / "missing.png"}
    argv = ["generate", "a red circle", "-n", "1", "--steps", "2",
            *[a.format(**paths) for a in args]]  # fmt: skip
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


def test_load_attaches_a_controlnet_folder(run):
    import hwaksan as hk

    pipe = hk.load("shapes_t2i_64", device="cpu", controlnet=run)  # a run folder: its model/
    assert pipe.controlnet is not None and pipe.controlnet.config.unet == pipe.unet.config
    assert type(pipe.parts[0]).__name__ == "ControlNetPart"  # innermost, below every guide
