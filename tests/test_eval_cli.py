"""`hwaksan eval` through click's CliRunner: the table, the JSON, and one-line errors."""

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hwaksan.cli import main

pytest.importorskip("sklearn")


def _write_digits(folder, labels_offset=0, noise=False, n=40):
    """Held-out digits as 16x16 gray PNGs, with metadata.jsonl labels (shifted by an offset)."""
    from hwaksan.data.digits import load_digits_tensors

    images, labels = load_digits_tensors("heldout", resolution=16)
    images, labels = images[::7][:n], labels[::7][:n]
    if noise:
        images = torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    folder.mkdir()
    rows = []
    for i, (image, label) in enumerate(zip(images, labels)):
        array = ((image[0] + 1) * 127.5).round().byte().numpy()
        Image.fromarray(array).save(folder / f"{i:03d}.png")
        rows.append(
            json.dumps({"file_name": f"{i:03d}.png", "label": (int(label) + labels_offset) % 10})
        )
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return images


def test_digits_table_and_json(tmp_path):
    _write_digits(tmp_path / "real")
    runner = CliRunner()
    table = runner.invoke(main, ["eval", str(tmp_path / "real"), "--data", "digits", "--n", "300"])
    assert table.exit_code == 0, table.output
    for row in (
        "frechet_distance",
        "kid",
        "predicted_histogram",
        "class_accuracy",
        "note: only 40",
    ):
        assert row in table.output
    out = runner.invoke(main, ["eval", str(tmp_path / "real"), "--data", "digits", "--json"])
    result = json.loads(out.stdout)
    assert result["n_generated"] == 40 and result["resolution"] == 16
    assert result["feature"] == "digits" and sum(result["predicted_histogram"]) == 40
    assert result["class_accuracy"] >= 0.9  # real digits, correct labels
    assert result["frechet_distance"] >= 0 and result["kid_std"] > 0


def test_labels_from_metadata_reach_the_accuracy(tmp_path):
    _write_digits(tmp_path / "wrong", labels_offset=1)  # every label is off by one
    out = CliRunner().invoke(main, ["eval", str(tmp_path / "wrong"), "--data", "digits", "--json"])
    assert json.loads(out.stdout)["class_accuracy"] <= 0.1


def test_noise_scores_worse_than_real_digits(tmp_path):
    _write_digits(tmp_path / "real")
    _write_digits(tmp_path / "noise", noise=True)
    runner = CliRunner()
    fd = {
        name: json.loads(
            runner.invoke(main, ["eval", str(tmp_path / name), "--data", "digits", "--json"]).stdout
        )["frechet_distance"]
        for name in ("real", "noise")
    }
    assert fd["noise"] > 5 * fd["real"], fd


def test_real_folder_as_reference(tmp_path):
    _write_digits(tmp_path / "a")
    _write_digits(tmp_path / "b", noise=True)
    args = ["eval", str(tmp_path / "b"), "--data", str(tmp_path / "a"), "--feature", "digits"]
    result = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert result["n_real"] == 40 and "class_accuracy" not in result


def test_user_errors_are_one_line(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["eval", str(tmp_path / "nope"), "--data", "digits"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "odd").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "odd" / "x.png")
    odd = runner.invoke(main, ["eval", str(tmp_path / "odd"), "--data", "shapes"])
    assert odd.exit_code == 2 and "16, 32, 64" in odd.output
    bad_feature = runner.invoke(
        main, ["eval", str(tmp_path / "odd"), "--data", "digits", "--feature", "vgg"]
    )
    assert bad_feature.exit_code == 2 and "unknown feature" in bad_feature.output


def test_shapes_folder_with_captions(tmp_path):
    from hwaksan.data import shapes

    images, scenes = shapes.render_batch(24, seed=7, config=shapes.ShapesConfig(resolution=32))
    rows = []
    for i, (image, scene) in enumerate(zip(images, scenes)):
        array = ((image.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
        Image.fromarray(array).save(tmp_path / f"{i:02d}.png")
        rows.append(json.dumps({"file_name": f"{i:02d}.png", "text": scene.caption}))
    (tmp_path / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    table = runner.invoke(main, ["eval", str(tmp_path), "--n", "200"])
    assert table.exit_code == 0, table.output
    for row in ("frechet_distance", "kid", "validity", "coverage", "prompt_all"):
        assert row in table.output
    result = json.loads(runner.invoke(main, ["eval", str(tmp_path), "--n", "200", "--json"]).stdout)
    assert result["feature"] == "shapes" and result["n_real"] == 200
    assert result["validity"] == 1.0 and result["prompt_all"] == 1.0  # real renders, true captions
