"""`layout=`: boxes with labels for a layout-to-image model (`nets.layout`), read by
cross-attention as a prompt would be; the empty layout (its null token alone) is `uncond`."""

from __future__ import annotations

from typing import Any

from hwaksan.errors import HwaksanError
from hwaksan.pipeline.parts import Part, Plan


class Layouts(Part):
    """`layout`: one layout for every image, or a list of n, each a list of
    ("red circle", (x0, y0, x1, y1)) with boxes in [0, 1] image fractions."""

    inputs = ("layout",)

    def prepare(self, pipe, plan: Plan, inputs: dict[str, Any]) -> None:
        encoder = getattr(pipe, "layout_encoder", None)
        layout = inputs.get("layout")
        if encoder is None:
            if layout is not None:
                raise HwaksanError("this model is not a layout-to-image model; it takes no layout")
            return
        layouts = per_image(layout, plan.n)
        for cond, rows in ((plan.cond, layouts), (plan.uncond, [[]] * plan.n)):
            encoding = encoder(rows)
            cond.update(context=encoding.hidden_states.to(pipe.device),
                        context_mask=encoding.attention_mask.to(pipe.device))  # fmt: skip


def per_image(layout, n: int) -> list[list]:
    """n layouts from one (a list of (label, box)) or n (a list of such lists); None: empty."""
    if layout is None:
        return [[]] * n
    layout = list(layout)
    if layout and isinstance(layout[0], list):  # one per image
        if len(layout) != n:
            raise HwaksanError(f"layout must be one layout or {n} (one per image)")
        return layout
    return [layout] * n
