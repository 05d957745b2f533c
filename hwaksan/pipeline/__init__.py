"""The `Pipeline` (`pipeline.py`) and the parts `generate` runs: conditioners and guides."""

from hwaksan.pipeline.conditioners import ClassLabels, Prompts
from hwaksan.pipeline.guides import ClassifierFreeGuidance, ClassifierGuidance, LayoutGuidance
from hwaksan.pipeline.hooks import StepCallback
from hwaksan.pipeline.parts import Part, Plan
from hwaksan.pipeline.pipeline import Pipeline, default_parts

__all__ = [
    "Pipeline",
    "default_parts",
    "Part",
    "Plan",
    "ClassLabels",
    "Prompts",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "LayoutGuidance",
    "StepCallback",
]
