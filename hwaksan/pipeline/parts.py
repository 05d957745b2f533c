"""What `Pipeline.generate` runs besides the sampler: parts that read named inputs.

A part (a conditioner or a guide) declares the `generate` keyword inputs it reads. `prepare`
reads them once per call and fills the `Plan`'s per-image `cond` / `uncond` (conditioners), or
returns a wrapper that turns the model callable into another for each batch (guides, like
diffusers' guidance but as a list). A new feature (ControlNet, IP-Adapter, img2img) is a new part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from hwaksan.errors import HwaksanError

if TYPE_CHECKING:
    from hwaksan.pipeline.pipeline import Pipeline

Model = Callable[..., torch.Tensor]  # model(x_t, t, **cond) -> prediction
Wrapper = Callable[[Model, slice], Model]  # (model, the batch's slice of the n images) -> model
Start = Callable[[Model, slice], torch.Tensor]  # (the batch's wrapped model, slice) -> its x
Finish = Callable[[torch.Tensor, slice], torch.Tensor]  # (decoded images, slice) -> images


@dataclass
class Plan:
    """One `generate` call as its parts build it: n images from `x_T`, with per-image inputs."""

    n: int
    sampler: str
    steps: int
    x_T: torch.Tensor  # (n, *sample_shape) the starting noise
    generator: torch.Generator
    eta: float = 0.0
    cond: dict[str, Any] = field(default_factory=dict)  # the network's inputs, (n, ...) tensors
    # (or dicts of them: `cross_attention_kwargs`)
    uncond: dict[str, Any] = field(default_factory=dict)  # their unconditional twins
    per_image: dict[str, Any] = field(default_factory=dict)  # what guides read, e.g. targets
    sample_args: dict[str, Any] = field(default_factory=dict)  # extra `hk.sample` keywords
    start_step: int = 0  # where the sampler starts (img2img); `steps`: none is left to run
    start: Start | None = None  # the batch's x from its wrapped model (DDIM inversion); None: x_T
    finish: list[Finish] = field(default_factory=list)  # on the decoded images (paste-back)

    def batch(self, inputs: dict[str, Any], part: slice) -> dict[str, Any]:
        """The rows of one batch of per-image inputs (tensors, or dicts of them such as
        `cross_attention_kwargs`)."""
        return {
            k: self.batch(v, part) if isinstance(v, dict) else v[part] for k, v in inputs.items()
        }


class Part:
    """A feature of `generate`: reads the named `inputs` it declares, fills the plan, and may
    wrap the model callable (return a `Wrapper` from `prepare`)."""

    inputs: tuple[str, ...] = ()

    def prepare(self, pipe: Pipeline, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        """Read this part's inputs (absent ones are missing from `inputs`), fill `plan`."""
        return None


def check_inputs(parts: list[Part], inputs: dict[str, Any]) -> None:
    """A one-line error for a named input no part reads, naming the inputs this model reads."""
    known = list(dict.fromkeys(name for part in parts for name in part.inputs))
    unknown = [name for name in inputs if name not in known]
    if unknown:
        raise HwaksanError(
            f"generate() got unknown input(s) {', '.join(map(repr, unknown))}; "
            f"this model reads {', '.join(known)}"
        )
