"""`hwaksan train` and `hwaksan sample` end to end at toy scale, and their one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

import hwaksan as hk
from hwaksan.cli import main

TOY = ["--preset", "tiny", "--steps", "3", "--batch-size", "8", "--sample-every", "0",
       "--warmup", "1", "--sample-steps", "2", "--num-samples", "4"]  # fmt: skip


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    result = _run("train", "--data", "digits", "--class-conditional", "--out", str(out), *TOY)
    assert result.exit_code == 0, result.output
    return out


def test_train_then_sample(trained, tmp_path):
    assert (trained / "model" / "config.json").exists()
    assert (trained / "log.csv").exists() and (trained / "samples").is_dir()
    pipe = hk.load(trained / "model")
    assert pipe.num_classes == 10 and pipe.image_shape == (1, 16, 16)
    assert pipe.class_names[3] == "three"
    grid = tmp_path / "grid.png"
    result = _run("sample", str(trained), "-n", "20", "--steps", "3", "--out", str(grid),
                  "--scale", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    # 20 images, one row per class: 10 columns x 2 rows of 16 px tiles with 1 px padding
    assert Image.open(grid).size == (10 * 17 + 1, 2 * 17 + 1)


def test_resume_continues_and_other_settings_are_refused(trained):
    result = _run("train", "--data", "digits", "--class-conditional", "--out", str(trained),
                  "--resume", *TOY[:2], "--steps", "4", *TOY[4:])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "trained 4 steps" in result.output
    result = _run("train", "--data", "digits", "--class-conditional", "--out", str(trained),
                  "--resume", "--schedule", "linear", *TOY)  # fmt: skip
    assert result.exit_code == 2
    assert "different model" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "digits", "--preset", "huge"], "unknown U-Net preset"),
        (["--data", "{missing}"], "neither shapes, digits nor an existing folder"),
        (["--data", "{empty}"], "has no images"),
        (["--data", "digits", "--resolution", "15"], "not divisible"),
        (["--data", "digits", "--lr", "1e30"], "--lr"),
        (["--data", "{empty}", "--class-conditional"], "has no images"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in args]
    result = _run("train", "--out", str(tmp_path / "run"), *TOY[:2], "--steps", "6", *TOY[4:],
                  *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output


def test_sample_bad_model_is_one_clear_line(tmp_path):
    result = _run("sample", str(tmp_path), "--out", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert "config.json is missing" in result.output


def test_demo_runs_end_to_end_at_toy_scale(tmp_path):
    result = _run("demo", "--out", str(tmp_path), "--minutes", "1", "--steps", "2", "-n", "8")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "scores.json").read_text())
    assert report["train_steps"] == 2
    for name in ("ddim-50", "dpmpp_2m-20"):
        assert 0 <= report["scores"][name]["validity"] <= 1
        assert report["scores"][name]["n"] == 8
        assert (tmp_path / f"samples_{name.replace('-', '_')}.png").exists()
    assert (tmp_path / "train" / "model" / "config.json").exists()


def test_train_on_an_image_folder(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (24, 20), (60 * i, 255 - 60 * i, 90)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    result = _run("train", "--data", str(folder), "--resolution", "16", "--out", str(out), *TOY)
    assert result.exit_code == 0, result.output
    pipe = hk.load(out / "model")
    assert pipe.image_shape == (3, 16, 16) and pipe.num_classes is None
    assert pipe.data["name"] == "folder"


def test_objects_trains_on_scenes_of_several_shapes(tmp_path):
    from hwaksan.data.shapes import detect
    from hwaksan.train.data import training_data

    data = training_data("shapes", 32, max_objects=3, scenes=40)
    assert data.num_classes is None and data.info["shapes_config"]["max_objects"] == 3
    counts = {len(detect(data.dataset[i]["image"])) for i in range(40)}
    assert counts == {1, 2, 3}
    result = CliRunner().invoke(main, ["train", "--data", "shapes", "--objects", "3", "--scenes",
                                       "16", "--class-conditional", "--steps", "1", "--out",
                                       str(tmp_path / "s")])  # fmt: skip
    assert result.exit_code != 0 and "needs labels" in result.output
    result = CliRunner().invoke(main, ["train", "--data", "digits", "--objects", "2",
                                       "--steps", "1", "--out", str(tmp_path / "d")])  # fmt: skip
    assert result.exit_code != 0 and "--objects goes with --data shapes" in result.output
