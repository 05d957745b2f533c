"""Control images of a scene for ControlNet (Zhang et al. 2023): where the objects are, without
their colors, so a prompt can still decide the colors.

"segmentation": the objects' silhouettes (the segmentation mask's foreground), white on black;
"edges": the rendered scene's edge map (`renderer.edge_map`), white on black. Both are uint8
[H, W, 3] RGB images, as a user's control image file would be.
"""

from __future__ import annotations

import numpy as np

from hwaksan.data.shapes.renderer import edge_map, render, segmentation_mask
from hwaksan.data.shapes.scene import Scene
from hwaksan.errors import HwaksanError

CONTROLS = ("segmentation", "edges")


def control_map(scene: Scene, kind: str, image: np.ndarray | None = None) -> np.ndarray:
    """bool [H, W]: the scene's silhouettes ("segmentation") or edges ("edges"); `image` is the
    scene's render (uint8 [H, W, 3]) when the caller has it."""
    if kind == "segmentation":
        return segmentation_mask(scene) > 0
    if kind == "edges":
        return edge_map(render(scene) if image is None else image) > 0
    raise HwaksanError(f"unknown control {kind!r}; known: {', '.join(CONTROLS)}")


def control_image(scene: Scene, kind: str, image: np.ndarray | None = None) -> np.ndarray:
    """uint8 [H, W, 3]: `control_map` white (255) on black, as an RGB control image."""
    return np.repeat(control_map(scene, kind, image)[..., None] * np.uint8(255), 3, axis=-1)
