"""A page's form values as one checked `generate` call, run with a progress report.

Everything here is plain Python: the Gradio layout (`serve.page`) only passes the values on and
shows what comes back. A bad value is a `HwaksanError` whose message the page shows as one
sentence (`one_sentence`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from hwaksan.errors import HwaksanError
from hwaksan.pipeline import Pipeline
from hwaksan.serve.form import WIDGETS, form_inputs

MAX_IMAGES = 16  # one page's gallery
MAX_SEED = 2**63 - 1
Report = Callable[[float, str], None]  # (fraction done, what is happening)


@dataclass
class Request:
    """One generation as the page asks for it: the sampler settings and the model's inputs."""

    n: int
    sampler: str
    steps: int
    seed: int
    inputs: dict[str, Any] = field(default_factory=dict)  # generate's named inputs


def checked_request(
    pipe: Pipeline, sampler: str | None, steps: Any, seed: Any, n: Any, values: dict[str, Any]
) -> Request:
    """The form's values checked and converted: count, steps, seed, then each shown input
    (`values` holds every widget's value; those this model does not take are dropped)."""
    from hwaksan.sampling.registry import sampler_names

    sampler = sampler or pipe.sampler
    if sampler not in sampler_names():
        raise HwaksanError(f"unknown sampler {sampler!r}; use one of {', '.join(sampler_names())}")
    n = _whole(n, "Images", 1, MAX_IMAGES)
    steps = _whole(steps if steps not in (None, "") else pipe.steps, "Steps", 1, None)
    most = pipe.schedule.num_train_timesteps
    if steps > most:
        raise HwaksanError(f"Steps {steps} is more than the model's {most} timesteps")
    seed = _whole(seed if seed not in (None, "") else 0, "Seed", 0, MAX_SEED)
    inputs = {}
    for name in form_inputs(pipe):
        value = _checked_value(name, values.get(name))
        if value is not None:
            inputs[name] = value
    inputs = {k: v for k, v in inputs.items() if WIDGETS[k].needs in (None, *inputs)}
    return Request(n, sampler, steps, seed, inputs)


def _checked_value(name: str, value: Any) -> Any:
    """One input's value as `generate` takes it; None when the field is empty."""
    widget = WIDGETS[name]
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "" or value is False:
        if widget.required:
            raise HwaksanError(f"{widget.label} is empty: write one, {widget.info}")
        return None
    if widget.kind == "number":
        return _number(value, widget.label, widget.minimum, widget.maximum)
    if widget.kind == "class":
        return [_whole(value, widget.label, 0, None)]
    if widget.kind == "image" and isinstance(value, Image.Image):
        return value.convert("RGB")
    return value


def _number(value: Any, label: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite float in [low, high]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HwaksanError(f"{label} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise HwaksanError(f"{label} must be a finite number, not {value!r}")
    if not low <= number <= high:
        raise HwaksanError(f"{label} {value!r} is not between {low:g} and {high:g}")
    return number


def _whole(value: Any, label: str, low: int, high: int | None) -> int:
    """A whole number in [low, high] (a float with no fraction counts)."""
    if not isinstance(value, int) or isinstance(value, bool):  # a float past 2**53 rounds
        number = _number(value, label)
        if not number.is_integer():
            raise HwaksanError(f"{label} must be a whole number, not {value!r}")
        value = int(number)
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise HwaksanError(f"{label} {value} is not {limit}")
    return value


def run_request(pipe: Pipeline, request: Request, report: Report | None = None) -> list:
    """The request's images (PIL), reporting (fraction, "step k/steps") after every sampler
    step through `generate(callback=...)`; one batch, so one trajectory the bar follows."""
    callback = None if report is None else progress_callback(report, request.steps)
    return pipe.generate(
        request.n, sampler=request.sampler, steps=request.steps, seed=request.seed,
        progress=False, batch_size=request.n, callback=callback, **request.inputs,
    )  # fmt: skip


def progress_callback(report: Report, steps: int) -> Callable:
    """A sampler callback that reports each finished step out of `steps` (a `SamplerStep`'s
    index counts from the schedule's start, so an img2img run begins part-way)."""

    def callback(step) -> None:
        done = step.index + 1
        report(done / steps, f"step {done}/{steps}")

    return callback


def one_sentence(error: BaseException) -> str:
    """An error as the page shows it: its message on one line."""
    return " ".join(str(error).split()) or type(error).__name__
