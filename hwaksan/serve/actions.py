"""What the page does when a model is chosen and when Generate is pressed, as plain functions.

`model_form` says which fields a model takes and their defaults; `generate_images` turns the
form into images or one sentence of error. The Gradio layout (`serve.page`) only wires them up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from hwaksan.errors import HwaksanError
from hwaksan.registry import SHIPPED
from hwaksan.serve.form import class_choices, form_inputs
from hwaksan.serve.models import Models
from hwaksan.serve.request import Report, checked_request, one_sentence, run_request


@dataclass
class ModelForm:
    """The fields one model takes: shown inputs, class choices, its own sampler and steps."""

    inputs: list[str]
    class_choices: list[tuple[str, int]]
    sampler: str
    steps: int
    about: str  # one line on the model


@dataclass
class Result:
    """What Generate shows: the images (None on an error: the gallery keeps what it had) and a
    status line."""

    images: list[Image.Image] | None
    message: str


def model_form(models: Models, name: str, adapters: Sequence = ()) -> ModelForm:
    """The form for model `name` with `adapters` attached (loaded now, then kept): a ControlNet
    adds its control image, an IP-Adapter its image prompt; HwaksanError for a bad name."""
    pipe, _ = models.pipeline(name, adapters)
    c, h, w = pipe.image_shape
    kind = SHIPPED.get(name, str(name))
    about = f"{kind}; {w}x{h} {'RGB' if c == 3 else f'{c}-channel'} images"
    return ModelForm(form_inputs(pipe), class_choices(pipe), pipe.sampler, pipe.steps, about)


def generate_images(
    models: Models, name: str, settings: dict[str, Any], values: dict[str, Any],
    adapters: Sequence = (), report: Report | None = None,
) -> Result:  # fmt: skip
    """The form's images: `settings` (sampler, steps, seed, n), `values` (every widget's value,
    by input name), `adapters` (shipped names, paths, or an upload's files each); a bad value or
    a HwaksanError is a one-sentence message."""
    report = report or (lambda fraction, text: None)
    try:
        if models.busy(name):
            report(0.0, f"queued: another generation on {name} runs first")
        with models.turn(name):
            pipe, notes = models.pipeline(name, adapters)
            request = checked_request(pipe, values=values, **settings)
            start = time.perf_counter()
            images = run_request(pipe, request, report)
    except (HwaksanError, ValueError) as e:
        return Result(None, "error: " + one_sentence(e))
    seconds = time.perf_counter() - start
    done = (f"{len(images)} image(s) in {seconds:.1f} s: {request.sampler}, {request.steps} "
            f"steps, seed {request.seed}")  # fmt: skip
    return Result(images, "; ".join([done, *notes]))
