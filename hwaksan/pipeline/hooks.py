"""Parts that reach the sampler's own hooks (`hk.sample`'s `callback`, later `start_step`)."""

from __future__ import annotations

from typing import Any

from hwaksan.errors import HwaksanError
from hwaksan.pipeline.parts import Part, Plan, Wrapper


class StepCallback(Part):
    """`callback=fn`: fn(step) after every sampler step, `step` a `sampling.SamplerStep` (index,
    timestep, x, denoised) — step previews, a web page's progress bar; a tensor it returns
    replaces x (RePaint-style inpainting). With more images than `batch_size`, each batch runs
    its own trajectory, so fn sees each batch's steps in turn."""

    inputs = ("callback",)

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        callback = inputs.get("callback")
        if callback is None:
            return None
        if not callable(callback):
            raise HwaksanError(f"callback must be a function of one step, not {callback!r}")
        plan.sample_args["callback"] = callback
        return None
