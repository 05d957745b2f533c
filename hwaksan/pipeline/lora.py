"""`generate(..., lora_scale=s)`: the loaded LoRAs' updates times s while the U-Net runs (the
`scale` of diffusers' `cross_attention_kwargs`): 0 is the base model, 1 the LoRAs as set by
`set_adapters`. A text-encoder LoRA keeps its `set_adapters` weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hwaksan.errors import HwaksanError
from hwaksan.pipeline.parts import Model, Part, Plan, Wrapper

if TYPE_CHECKING:
    from hwaksan.pipeline.pipeline import Pipeline


class LoRAScale(Part):
    """Reads `lora_scale` (a finite float); wraps each network call in `lora_scale`."""

    inputs = ("lora_scale",)

    def prepare(self, pipe: Pipeline, plan: Plan, inputs: dict[str, Any]) -> Wrapper | None:
        if inputs.get("lora_scale") is None:
            return None
        scale = inputs["lora_scale"]
        number = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        if not number or not math.isfinite(scale):
            raise HwaksanError(f"lora_scale must be a finite number, not {scale!r}")
        from hwaksan.nets.adapters import lora_layers, lora_scale

        if not lora_layers(pipe.unet):
            raise HwaksanError("lora_scale= needs a LoRA: pipe.load_lora_weights(path) first")

        def wrap(model: Model, part: slice) -> Model:
            def scaled(x, t, **cond):
                with lora_scale(pipe.unet, float(scale)):
                    return model(x, t, **cond)

            return scaled

        return wrap
