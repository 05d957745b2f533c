"""Guides: parts that wrap the model callable for each batch — classifier-free guidance,
classifier guidance and layout guidance — in the order the pipeline lists them."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import layout_guidance, parse_relations
from hwaksan.pipeline.conditioners import prompt_list
from hwaksan.pipeline.parts import Part, Plan, Wrapper


class ClassifierFreeGuidance(Part):
    """`guidance_scale` != 1 mixes in the prediction on `uncond` (Ho & Salimans 2022)."""

    inputs = ("guidance_scale",)

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        from hwaksan.sampling.guidance import classifier_free_guidance

        guidance_scale = inputs.get("guidance_scale")
        if guidance_scale is None or guidance_scale == 1.0:
            return None
        if not plan.uncond:
            raise HwaksanError("guidance_scale needs a class-conditional or text model")
        return lambda model, part: classifier_free_guidance(
            model, guidance_scale, plan.batch(plan.uncond, part)
        )


class ClassifierGuidance(Part):
    """`classifier_scale`: steer toward the plan's class labels by the attached noise-aware
    classifier's gradient (Dhariwal & Nichol 2021) — the mean-shift form for ancestral DDPM, the
    eps form for the others. Checked once, up front."""

    inputs = ("classifier_scale",)

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        from hwaksan.sampling.classifier_guidance import classifier_guidance
        from hwaksan.sampling.timesteps import discrete_timesteps

        classifier_scale = inputs.get("classifier_scale")
        if not classifier_scale:
            return None
        labels = plan.per_image.get("class_labels")
        classifier = checked_classifier(pipe, labels)
        ddpm_timesteps = None
        if plan.sampler == "ddpm":
            ddpm_timesteps = discrete_timesteps(pipe.schedule, plan.steps, pipe.timestep_spacing)
        guide = functools.partial(
            classifier_guidance, classifier=classifier, classifier_scale=classifier_scale,
            schedule=pipe.schedule, prediction_type=pipe.prediction_type,
            ddpm_timesteps=ddpm_timesteps,
        )  # fmt: skip
        return lambda model, part: guide(model, class_labels=labels[part])


class LayoutGuidance(Part):
    """`relations` steer where the prompt's objects go by their cross-attention
    (`guidance.layout`): ("red circle", "left of", "blue square") triples of phrases from the
    prompt, one list for all images or one per image, at `layout_scale` (None: the model's own
    `pipe.layout_scale`; 0: off)."""

    inputs = ("relations", "layout_scale", "prompt")

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        layout_scale = inputs.get("layout_scale")
        layout_scale = pipe.layout_scale if layout_scale is None else layout_scale
        relations = inputs.get("relations")
        if not layout_scale or relations is None:
            return None
        layouts = _layouts(pipe, plan.n, inputs.get("prompt"), relations)
        if not layouts:
            return None
        return lambda model, part: layout_guidance(
            model, pipe.unet, layouts[part], layout_scale, schedule=pipe.schedule,
            prediction_type=pipe.prediction_type,
        )  # fmt: skip


def _layouts(pipe, n: int, prompt, relations) -> list:
    """Per image, the `Relation`s of its prompt (token positions)."""
    if pipe.text_encoder is None:
        raise HwaksanError("relations steer a text model's cross-attention; this is not one")
    relations = list(relations)
    if relations and relations[0] and isinstance(relations[0][0], str):  # one list for all
        relations = [relations]
    if len(relations) == 1:
        relations = relations * n
    if len(relations) != n:
        raise HwaksanError(f"relations must be one list of triples or {n} lists, one per image")
    prompts = prompt_list(prompt, n, "prompt")
    tokenize = pipe.text_encoder.tokenize
    return [parse_relations(tokenize, p, r) for p, r in zip(prompts, relations)]


def checked_classifier(pipe, labels: torch.Tensor | None) -> nn.Module:
    """The attached classifier, on the model's device, once it fits the model and the labels."""
    classifier = pipe.classifier
    if classifier is None:
        raise HwaksanError("classifier_scale needs a classifier attached to the pipeline")
    config = classifier.config
    if pipe.num_classes is not None and config.num_classes != pipe.num_classes:
        raise HwaksanError(
            f"the classifier knows {config.num_classes} classes but the model "
            f"{pipe.num_classes}; attach a classifier trained on the model's classes"
        )
    shape = (config.in_channels, config.resolution, config.resolution)
    if shape != tuple(pipe.sample_shape):
        raise HwaksanError(f"the classifier reads {shape} inputs but the model makes "
                           f"{tuple(pipe.sample_shape)}")  # fmt: skip
    if config.schedule is not None and config.schedule != pipe.schedule.to_config():
        raise HwaksanError("the classifier was trained on another noise schedule than the model's")
    if labels is None or bool((labels >= config.num_classes).any()):
        raise HwaksanError(
            f"classifier_scale needs class_labels in 0..{config.num_classes - 1}: "
            "the classes to steer to"
        )
    return classifier.to(pipe.device)
