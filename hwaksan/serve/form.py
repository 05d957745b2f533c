"""Which fields the page shows for a model: one widget per `generate` input its parts read.

Each pipeline `Part` declares the named inputs it reads (`Part.inputs`); `WIDGETS` maps an input
name to the widget that fills it. A part that lands later (img2img, inpainting, ControlNet,
IP-Adapter) shows up on the page with one line here; an input without a line is not shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwaksan.pipeline import Pipeline

KINDS = ("text", "number", "image", "check", "class")  # the widget kinds the layout draws


def _text_model(pipe: Pipeline) -> bool:
    return pipe.text_encoder is not None


def _class_model(pipe: Pipeline) -> bool:
    return pipe.num_classes is not None and pipe.text_encoder is None


def _conditional(pipe: Pipeline) -> bool:
    return _text_model(pipe) or _class_model(pipe)


def _always(pipe: Pipeline) -> bool:
    return True


@dataclass(frozen=True)
class Widget:
    """How the page fills one `generate` input: its kind, label, help line and default; numbers
    have a range; `shown(pipe)` says whether this model takes the input at all."""

    kind: str  # one of KINDS
    label: str
    info: str = ""
    default: Any = None  # None: the field starts empty and an empty field is not passed
    minimum: float = -math.inf
    maximum: float = math.inf
    required: bool = False  # an empty field is a one-line error
    shown: Callable[[Pipeline], bool] = _always
    needs: str | None = None  # another input without which this one is not passed (image)


# input name -> widget, one line each; the order here is the order on the page
WIDGETS: dict[str, Widget] = {
    "prompt": Widget("text", "Prompt", "e.g. 'a red circle'", required=True, shown=_text_model),
    "negative_prompt": Widget("text", "Negative prompt", "what to avoid", shown=_text_model),
    "class_labels": Widget("class", "Class", "the class every image shows", shown=_class_model),
    "guidance_scale": Widget("number", "Guidance", "1 = none", 4.0, 0, 100, shown=_conditional),
    "image": Widget("image", "Init image", "image-to-image: start from this image"),
    "strength": Widget(
        "number", "Strength", "0 keeps the init image, 1 ignores it", None, 0, 1, needs="image"
    ),
    "invert": Widget(
        "check", "Invert", "start from the init image's DDIM inversion", needs="image"
    ),
    "mask_image": Widget(
        "image", "Mask", "inpainting: white where the model paints", needs="image"
    ),
    "control_image": Widget("image", "Control image", "ControlNet: an edge or segmentation map"),
    "ip_adapter_image": Widget("image", "Image prompt", "IP-Adapter: an image to take after"),
}


def form_inputs(pipe: Pipeline) -> list[str]:
    """The inputs the page shows for `pipe`: those its parts read that have a widget and that
    this model takes, in the table's order."""
    read = {name for part in pipe.parts for name in part.inputs}
    return [name for name, widget in WIDGETS.items() if name in read and widget.shown(pipe)]


def class_choices(pipe: Pipeline) -> list[tuple[str, int]]:
    """(label, class id) for a class model's class field: the model's names where it has them."""
    if not _class_model(pipe):
        return []
    names = pipe.class_names or [str(i) for i in range(pipe.num_classes)]
    return [(f"{i}: {name}", i) for i, name in enumerate(names[: pipe.num_classes])]
