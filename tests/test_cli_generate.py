"""`hwaksan train --text-encoder` on a captioned folder, then `hwaksan generate` from the model."""

from __future__ import annotations

import json
import warnings

import pytest
from captioned_folder import save_tiny_mini_clip, write_captioned_shapes
from click.testing import CliRunner
from PIL import Image

from hwaksan.cli import main


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A 2-step text-to-image model on 8 captioned images, with a tiny random mini-CLIP."""
    root = tmp_path_factory.mktemp("t2i")
    data = write_captioned_shapes(root / "data")
    save_tiny_mini_clip(root / "clip")
    out = root / "run"
    result = CliRunner().invoke(main, [
        "train", "--data", str(data), "--resolution", "16", "--text-encoder", str(root / "clip"),
        "--channels", "16,32", "--steps", "2", "--batch-size", "4", "--num-samples", "4",
        "--sample-steps", "2", "--checkpoint-every", "2", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out / "model"


def test_train_with_a_text_encoder_saves_it_in_the_model_folder(text_model):
    config = json.loads((text_model / "config.json").read_text())
    assert config["modules"]["text_encoder"]["class"] == "MiniCLIPTextModel"
    assert config["unet"]["context_dim"] == 32
    assert (text_model / "text_encoder.safetensors").exists()


def test_generate_writes_one_row_per_prompt(text_model, tmp_path):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, [
        "generate", "a red circle", "a blue square above a green triangle", "-n", "3",
        "--model", str(text_model), "--steps", "2", "--scale", "1", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (3 * 17 + 1, 2 * 17 + 1)  # 16 px tiles, 1 px gaps
    assert "6 images (2 prompt(s) x 3)" in result.output


def test_generate_steers_a_relation_and_names_a_phrase_that_is_not_in_the_prompt(
    text_model, tmp_path
):
    prompt, out = "a blue square above a green triangle", tmp_path / "steered.png"
    args = ["generate", prompt, "-n", "2", "--model", str(text_model), "--steps", "2"]
    plain = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "plain.png")])
    steered = CliRunner().invoke(main, [
        *args, "--relation", "blue square", "above", "green triangle", "--out", str(out),
    ])  # fmt: skip
    assert plain.exit_code == 0 and steered.exit_code == 0, steered.output
    assert Image.open(out).tobytes() != Image.open(tmp_path / "plain.png").tobytes()
    bad = CliRunner().invoke(main, [*args, "--relation", "red star", "above", "green triangle"])
    assert bad.exit_code != 0
    assert "'red star' is not in the prompt" in bad.output


def test_generate_uses_the_models_own_layout_scale(tmp_path):
    """shapes_t2i stores layout scale 0 (layout guidance was measured to hurt it): --relation
    alone leaves its images as they are and says so; --layout-scale turns guidance on."""
    prompt = "a red circle to the left of a blue square"
    args = ["generate", prompt, "-n", "1", "--model", "shapes_t2i", "--steps", "2"]
    rel = ["--relation", "red circle", "left of", "blue square"]
    runs = {}
    for name, extra in [("plain", []), ("default", rel), ("forced", [*rel, "--layout-scale", "5"])]:
        out = tmp_path / f"{name}.png"
        runs[name] = CliRunner().invoke(main, [*args, *extra, "--out", str(out)])
        assert runs[name].exit_code == 0, runs[name].output
        runs[name] = (runs[name].output, Image.open(out).tobytes())
    assert "without layout guidance by default" in runs["default"][0]
    assert runs["default"][1] == runs["plain"][1]
    assert runs["forced"][1] != runs["plain"][1]


def test_generate_notes_a_too_long_prompt_in_one_line_and_still_writes(text_model, tmp_path):
    long_prompt = " ".join(["a red circle to the left of a blue square"] * 5)
    out = tmp_path / "long.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI says it in its own line, not a Python warning
        result = CliRunner().invoke(main, [
            "generate", long_prompt, "-n", "1", "--model", str(text_model), "--steps", "2",
            "--out", str(out),
        ])  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "cut" in notes[0] and long_prompt not in notes[0], notes
    assert out.exists()


def test_generate_from_a_model_without_text_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["generate", "a red circle", "--model", "shapes"])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "error: shapes is not a text-to-image model (it has no text encoder)"
    )


def test_train_can_grow_a_trained_model_with_context_layers(text_model, tmp_path):
    """`--init-from` starts from the model's U-Net; `--context-layers` adds the new part."""
    data = text_model.parent.parent / "data"
    out = tmp_path / "grown"
    result = CliRunner().invoke(main, [
        "train", "--data", str(data), "--resolution", "16", "--text-encoder",
        str(text_model.parent.parent / "clip"), "--channels", "16,32", "--context-layers", "1",
        "--init-from", str(text_model), "--steps", "1", "--batch-size", "4", "--num-samples",
        "0", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "new tensors start fresh (context_encoder)" in result.output
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["unet"]["context_layers"] == 1
    result = CliRunner().invoke(main, [
        "train", "--data", str(data), "--resolution", "16", "--text-encoder",
        str(text_model.parent.parent / "clip"), "--channels", "32,64", "--init-from",
        str(text_model), "--steps", "1", "--out", str(tmp_path / "misfit"),
    ])  # fmt: skip
    assert result.exit_code != 0 and "does not fit this one" in result.output


def test_train_text_encoder_trains_and_saves_the_text_tower(text_model, tmp_path):
    """`--train-text-encoder`: the diffusion loss reaches the text tower, and the model folder
    keeps the trained (EMA) tower, not the one it started from."""
    import torch
    from safetensors.torch import load_file

    root = text_model.parent.parent
    out = tmp_path / "joint"
    result = CliRunner().invoke(main, [
        "train", "--data", str(root / "data"), "--resolution", "16", "--text-encoder",
        str(root / "clip"), "--train-text-encoder", "--channels", "16,32", "--steps", "3",
        "--batch-size", "4", "--lr", "1e-2", "--ema-decay", "0.5", "--num-samples", "2",
        "--sample-steps", "2", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    from hwaksan.nets.text import load_text_encoder

    start = load_text_encoder(str(root / "clip")).state_dict()
    trained = load_file(out / "model" / "text_encoder.safetensors")
    assert set(trained) == set(start)
    moved = [k for k in start if not torch.equal(start[k], trained[k])]
    assert moved, "the text tower did not change"
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["modules"]["text_encoder"]["class"] == "MiniCLIPTextModel"
    grid = tmp_path / "joint.png"
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "a red circle",
            "-n",
            "2",
            "--model",
            str(out / "model"),
            "--steps",
            "2",
            "--out",
            str(grid),
        ],
    )
    assert result.exit_code == 0, result.output


def test_train_text_encoder_refuses_an_encoder_whose_weights_a_folder_cannot_keep():
    from text_stand_in import WordEncoder

    from hwaksan.errors import HwaksanError
    from hwaksan.nets import build_unet
    from hwaksan.train.text import TextConditioned

    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, context_dim=16)
    with pytest.raises(HwaksanError, match="loads its weights from its package"):
        TextConditioned(unet, WordEncoder())
