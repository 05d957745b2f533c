"""Conditioners: parts that turn named inputs into the network's per-image `cond` and their
unconditional twins `uncond` (null class; empty or negative prompt) for classifier-free guidance."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.pipeline.parts import Part, Plan


class ClassLabels(Part):
    """`class_labels` (one per image, or one for all): the U-Net's `class_labels` on a
    class-conditional model (null class `num_classes` when absent), and the targets of classifier
    guidance (an unconditional model takes labels only with a `classifier_scale`)."""

    inputs = ("class_labels", "classifier_scale")

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> None:
        labels = class_labels(
            pipe, plan.n, inputs.get("class_labels"), inputs.get("classifier_scale")
        )
        if labels is None:
            return
        plan.per_image["class_labels"] = labels  # (n,) the classes a guiding classifier steers to
        if pipe.num_classes is not None and pipe.text_encoder is None:
            plan.cond["class_labels"] = labels  # (n,)
            plan.uncond["class_labels"] = torch.full_like(labels, pipe.num_classes)  # (n,)


class Prompts(Part):
    """`prompt` and `negative_prompt` (one string, or one per image) through the text encoder:
    cross-attention `context` + `context_mask`; the negative prompt (default empty) is `uncond`."""

    inputs = ("prompt", "negative_prompt")

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> None:
        prompt, negative_prompt = inputs.get("prompt"), inputs.get("negative_prompt")
        if pipe.text_encoder is None:
            if prompt is not None or negative_prompt is not None:
                raise HwaksanError("this model is not a text model; it takes no prompt")
            return
        plan.cond.update(pipe.encode_prompt(prompt_list(prompt, plan.n, "prompt")))
        negative = prompt_list(negative_prompt, plan.n, "negative_prompt")
        plan.uncond.update(pipe.encode_prompt(negative))


def class_labels(pipe, n: int, labels, classifier_scale=None) -> torch.Tensor | None:
    """Class labels as a LongTensor (n,) on the model's device, checked against num_classes.

    An unconditional model takes labels only as a guiding classifier's targets."""
    if pipe.num_classes is None and classifier_scale is None:
        if labels is not None:
            raise HwaksanError("this model is unconditional; it takes no class labels")
        return None
    num_classes = pipe.num_classes if pipe.num_classes is not None else _classes(pipe.classifier)
    if labels is None:
        if pipe.num_classes is None:
            raise HwaksanError("classifier_scale needs class_labels: the classes to steer to")
        return torch.full((n,), pipe.num_classes, device=pipe.device)  # the null class
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if len(labels) == 1:
        labels = labels.expand(n)
    if len(labels) != n or bool(((labels < 0) | (labels > num_classes)).any()):
        raise HwaksanError(
            f"class_labels must be {n} ids in 0..{num_classes - 1} ({num_classes} = unconditional)"
        )
    return labels.to(pipe.device)


def _classes(classifier: nn.Module | None) -> int:
    """How many classes the guiding classifier knows."""
    if classifier is None:
        raise HwaksanError("classifier_scale needs a classifier attached to the pipeline")
    return int(classifier.config.num_classes)


def prompt_list(prompt: str | list[str] | None, n: int, what: str) -> list[str]:
    """One prompt per image: a string (or one-element list) repeats; None is the empty prompt."""
    prompts = [prompt or ""] if prompt is None or isinstance(prompt, str) else list(prompt)
    if len(prompts) == 1:
        prompts = prompts * n
    if len(prompts) != n or not all(isinstance(p, str) for p in prompts):
        raise HwaksanError(f"{what} must be one string or {n} strings (one per image)")
    return prompts
