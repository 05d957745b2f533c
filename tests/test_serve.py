"""`hwaksan serve`'s logic without a browser: the form follows the model's parts, the page's
images are `generate`'s, bad values are one sentence, one generation at a time per model,
adapter files load, and the command checks its options before serving.
(tests/test_serve_browser.py drives the real page in headless Chromium.)"""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.adapters import LoRALayer, add_embeddings, inject_lora, lora_target_names
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.pipeline import Pipeline
from hwaksan.pipeline.parts import Part
from hwaksan.serve.actions import generate_images, model_form
from hwaksan.serve.form import WIDGETS, form_inputs
from hwaksan.serve.models import Models, shipped_models
from hwaksan.serve.request import checked_request

SETTINGS = dict(sampler="ddim", steps=4, seed=3, n=2)


def _text_pipe() -> Pipeline:
    """A tiny text-to-image pipeline (8 px, random weights): fast, and every input matters."""
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, num_heads=2,
                      attention_resolutions=(4,), context_dim=16)  # fmt: skip
    for name, p in unet.named_parameters():
        if "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)
    config = MiniCLIPTextConfig(vocab=shapes_vocabulary(), max_length=8, width=16, layers=1,
                                heads=2)  # fmt: skip
    text_encoder = MiniCLIPTextModel(config).eval().requires_grad_(False)
    return Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=3,
                    text_encoder=text_encoder)  # fmt: skip


def _models(pipe: Pipeline) -> Models:
    """A page's models where every name loads a fresh copy of `pipe`."""
    return Models(["tiny"], loader=lambda name: copy.deepcopy(pipe))


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images])


def test_the_form_follows_what_each_shipped_model_takes():
    models = Models()
    assert models.choices == shipped_models() and "digits_classifier_noisy" not in models.choices
    forms = {name: model_form(models, name) for name in ("shapes", "digits", "shapes_t2i")}
    images = ["image", "strength", "invert", "mask_image"]  # img2img and RePaint: any model
    assert sorted(forms["shapes"].inputs) == sorted(images)
    assert sorted(forms["digits"].inputs) == sorted(["class_labels", "guidance_scale", *images])
    assert [label for label, _ in forms["digits"].class_choices][:2] == ["0: zero", "1: one"]
    text = ["prompt", "negative_prompt", "guidance_scale"]
    assert sorted(forms["shapes_t2i"].inputs) == sorted(text + images)
    assert (forms["shapes_t2i"].sampler, forms["shapes_t2i"].steps) == ("ddim", 25)


class _Recorder(Part):
    """A part that lands later (img2img's names): it records what `generate` hands it."""

    inputs = ("image", "strength", "not_on_the_page")

    def prepare(self, pipe, plan, inputs):
        self.seen = dict(inputs)


def test_a_part_that_lands_later_shows_up_by_its_table_line():
    pipe = _text_pipe()
    pipe.parts = [part for part in pipe.parts if "image" not in part.inputs]  # as before img2img
    assert "image" not in form_inputs(pipe)
    recorder = _Recorder()
    pipe.parts.append(recorder)
    shown = form_inputs(pipe)
    assert shown[-2:] == ["image", "strength"] and "not_on_the_page" not in shown
    models = Models(["tiny"], loader=lambda name: pipe)
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    values = {"prompt": "a red circle", "image": image, "strength": 0.5, "class_labels": 3}
    result = generate_images(models, "tiny", SETTINGS, values)
    assert result.images is not None, result.message
    assert recorder.seen["strength"] == 0.5 and recorder.seen["image"].mode == "RGB"
    assert np.array_equal(np.asarray(recorder.seen["image"]), np.asarray(image.convert("RGB")))
    assert "class_labels" not in recorder.seen  # a text model has no class field
    assert WIDGETS["strength"].kind == "number" and WIDGETS["image"].kind == "image"


def test_the_page_images_are_generates_with_a_report_per_step():
    pipe = _text_pipe()
    reports = []
    values = {"prompt": "a red circle", "negative_prompt": "blue", "guidance_scale": 3.0}
    report = lambda fraction, text: reports.append((fraction, text))  # noqa: E731
    result = generate_images(_models(pipe), "tiny", dict(SETTINGS, steps=5), values, report=report)
    expected = pipe.generate(2, sampler="ddim", steps=5, seed=3, prompt="a red circle",
                             negative_prompt="blue", guidance_scale=3.0)  # fmt: skip
    assert np.array_equal(_pixels(result.images), _pixels(expected))
    assert reports == [(k / 5, f"step {k}/5") for k in range(1, 6)]
    assert result.message.startswith("2 image(s) in ") and "ddim, 5 steps, seed 3" in result.message
    other = generate_images(_models(pipe), "tiny", dict(SETTINGS, steps=5), {**values, "seed": 4})
    assert np.array_equal(_pixels(other.images), _pixels(result.images))  # not an input: ignored


BAD = [
    ({}, {"prompt": "  "}, "Prompt is empty"),
    ({"steps": 101}, {}, "Steps 101 is more than the model's 100 timesteps"),
    ({"steps": 0}, {}, "Steps 0 is not at least 1"),
    ({"steps": 2.5}, {}, "Steps must be a whole number"),
    ({"n": 0}, {}, "Images 0 is not between 1 and 16"),
    ({"n": 17}, {}, "Images 17 is not between 1 and 16"),
    ({"seed": -1}, {}, "Seed -1 is not between 0 and"),
    ({"seed": "x"}, {}, "Seed 'x' is not a number"),
    ({"seed": 2**63}, {}, f"Seed {2**63} is not between 0 and {2**63 - 1}"),
    ({"sampler": "nope"}, {}, "unknown sampler 'nope'"),
    ({}, {"guidance_scale": float("nan")}, "Guidance must be a finite number"),
    ({}, {"guidance_scale": 101}, "Guidance 101 is not between 0 and 100"),
]


@pytest.mark.parametrize("settings, values, fragment", BAD, ids=[b[2][:30] for b in BAD])
def test_a_bad_value_is_one_sentence_and_no_images(settings, values, fragment):
    values = {"prompt": "a red circle", **values}
    result = generate_images(_models(_text_pipe()), "tiny", {**SETTINGS, **settings}, values)
    assert result.images is None
    assert result.message.startswith("error: ") and "\n" not in result.message
    assert fragment in result.message, result.message


def test_a_bad_model_or_a_hwaksan_error_is_one_sentence():
    result = generate_images(Models(), "nowhere", SETTINGS, {})
    assert result.images is None and result.message.startswith("error: no model named 'nowhere'")
    result = generate_images(Models(), "digits", SETTINGS, {"class_labels": 11})
    assert "class_labels must be 2 ids in 0..9" in result.message


def test_one_generation_at_a_time_per_model_the_next_waits_its_turn():
    models = _models(_text_pipe())
    a_started, b_queued = threading.Event(), threading.Event()
    events, messages = [], {}

    def run(name):
        def report(fraction, text):
            events.append((name, text))
            if name == "b" and text.startswith("queued"):
                b_queued.set()
            if name == "a" and text == "step 1/6":
                a_started.set()
                b_queued.wait(10)  # a holds the model until b has asked for it

        settings = dict(SETTINGS, steps=6)
        result = generate_images(models, "tiny", settings, {"prompt": "a"}, report=report)
        messages[name] = result.message

    first = threading.Thread(target=run, args=("a",))
    first.start()
    a_started.wait(10)
    second = threading.Thread(target=run, args=("b",))
    second.start()
    first.join(30), second.join(30)
    steps = [f"step {k}/6" for k in range(1, 7)]
    assert events == [("a", steps[0]), ("b", "queued: another generation on tiny runs first"),
                      *[("a", s) for s in steps[1:]], *[("b", s) for s in steps]]  # fmt: skip
    assert all(m.startswith("2 image(s)") for m in messages.values()), messages


def _randomize(unet: nn.Module) -> None:
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, LoRALayer):
                for name in module.lora_A:
                    for w in (module.lora_A[name].weight, module.lora_B[name].weight):
                        w.copy_(torch.randn(w.shape, generator=g))


def _uploaded(folder, tmp_path) -> list[str]:
    """An adapter folder's files as an upload gives them: each in a folder of its own."""
    files = []
    for i, path in enumerate(sorted(folder.iterdir())):
        upload = tmp_path / "uploads" / f"{folder.name}{i}"
        upload.mkdir(parents=True)
        files.append(str(shutil.copy(path, upload / path.name)))
    return files


def test_lora_and_textual_inversion_files_load_like_the_pipeline_methods(tmp_path):
    base = _text_pipe()
    trained = copy.deepcopy(base)
    inject_lora(trained.unet, lora_target_names(trained.unet), r=2, lora_alpha=2.0)
    _randomize(trained.unet)
    add_embeddings(trained.text_encoder, {"<cat>": torch.randn(16)})
    trained.save_lora_weights(tmp_path / "lora")
    trained.save_textual_inversion(tmp_path / "ti", ["<cat>"])
    values = {"prompt": "a <cat> circle"}
    models = _models(base)
    loras, tis = _uploaded(tmp_path / "lora", tmp_path), _uploaded(tmp_path / "ti", tmp_path)
    result = generate_images(models, "tiny", SETTINGS, values, [loras, tis])
    layers = len(lora_target_names(base.unet))
    assert result.message.endswith(f"LoRA on {layers} layers; new tokens <cat>"), result.message
    expected = trained.generate(2, sampler="ddim", steps=4, seed=3, prompt="a <cat> circle")
    assert np.array_equal(_pixels(result.images), _pixels(expected))
    plain = generate_images(models, "tiny", SETTINGS, {"prompt": "a red circle"})
    adapted = generate_images(models, "tiny", SETTINGS, {"prompt": "a red circle"}, [loras])
    assert not np.array_equal(_pixels(plain.images), _pixels(adapted.images))
    wrong = generate_images(models, "tiny", SETTINGS, values, [tis[1:]])  # config.json alone
    assert wrong.images is None and wrong.message.startswith("error: "), wrong.message
    assert "\n" not in wrong.message


def test_shipped_adapters_add_their_fields_and_steer_the_images():
    models = Models()
    assert {"shapes_t2i_64_controlnet_seg", "shapes_t2i_64_ip_adapter",
            "shapes_t2i_64_watermark_lora"} <= set(models.adapter_choices)  # fmt: skip
    plain = model_form(models, "shapes_t2i_64").inputs
    control = model_form(models, "shapes_t2i_64", ["shapes_t2i_64_controlnet_seg"]).inputs
    both = model_form(models, "shapes_t2i_64", ["shapes_t2i_64_controlnet_seg",
                                                 "shapes_t2i_64_ip_adapter"]).inputs  # fmt: skip
    assert "control_image" not in plain and "ip_adapter_image" not in plain
    assert set(control) - set(plain) == {"control_image"}
    assert set(both) - set(plain) == {"control_image", "ip_adapter_image"}
    mask = Image.new("RGB", (64, 64))
    mask.paste((255, 255, 255), (8, 8, 28, 28))
    settings = dict(sampler="ddim", steps=3, seed=1, n=1)
    values = {"prompt": "a red circle", "control_image": mask}
    steered = generate_images(models, "shapes_t2i_64", settings, values,
                              ["shapes_t2i_64_controlnet_seg"])  # fmt: skip
    assert steered.images and steered.message.endswith("ControlNet attached"), steered.message
    bare = generate_images(models, "shapes_t2i_64", settings, values)  # no ControlNet: no field
    assert not np.array_equal(_pixels(steered.images), _pixels(bare.images))
    wrong = generate_images(models, "shapes", settings, {}, ["shapes_t2i_64_ip_adapter"])
    assert wrong.images is None and "text-to-image" in wrong.message, wrong.message


def test_serve_checks_its_options_then_launches_on_loopback(monkeypatch):
    calls = []
    monkeypatch.setattr("hwaksan.serve.launch", lambda models, **kw: calls.append((models, kw)))
    result = CliRunner().invoke(main, ["serve", "--model", "shapes_t2i"])
    assert result.exit_code == 0, result.output
    (models, options), = calls  # fmt: skip
    assert options == {"host": "127.0.0.1", "port": 7860, "share": False}
    assert models.choices[0] == "shapes_t2i" and set(models.choices) == set(shipped_models())
    for argv, fragment in [
        (["serve", "--model", "nowhere"], "no model named 'nowhere'"),
        (["serve", "--port", "0"], "--port"),
        (["serve", "--host", " "], "is not an address"),
    ]:  # fmt: skip
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 2 and fragment in result.stderr, result.stderr
    assert len(calls) == 1


def test_hwaksan_and_the_serve_command_import_no_gradio():
    code = ("import sys, hwaksan, hwaksan.serve.actions, hwaksan.cli.serve; "
            "print('gradio' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_taken_port_is_one_line():
    pytest.importorskip("gradio")
    import hwaksan.serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HwaksanError, match=f"cannot serve on 127.0.0.1:{port}: .*--port"):
            hwaksan.serve.launch(Models(["shapes"]), port=port, block=False)


def test_a_local_model_folder_is_offered_and_generates_like_the_loaded_model(tmp_path):
    folder = _text_pipe().save(tmp_path / "mine")
    models = Models([str(folder)])
    assert models.choices[0] == str(folder)
    assert model_form(models, str(folder)).inputs[:3] == [
        "prompt",
        "negative_prompt",
        "guidance_scale",
    ]
    result = generate_images(models, str(folder), SETTINGS, {"prompt": "a red circle"})
    expected = hk.load(folder).generate(2, sampler="ddim", steps=4, seed=3, prompt="a red circle")
    assert np.array_equal(_pixels(result.images), _pixels(expected))


def test_image_options_are_not_passed_without_the_image():
    """The page sends every field; strength, invert and a mask mean nothing without an image."""
    pipe = _text_pipe()
    values = {"prompt": "a red circle", "strength": 0.5, "invert": True, "mask_image": None}
    request = checked_request(pipe, "ddim", 2, 0, 1, values)
    assert "strength" not in request.inputs and "invert" not in request.inputs
    image = Image.new("RGB", (8, 8))
    request = checked_request(pipe, "ddim", 2, 0, 1, {**values, "image": image})
    assert request.inputs["strength"] == 0.5 and request.inputs["invert"] is True
