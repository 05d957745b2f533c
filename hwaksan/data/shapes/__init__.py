"""The shapes world: procedural captioned scenes of flat shapes, with ground truth and a detector.

cfg = ShapesConfig(resolution=32)
images, scenes = render_batch(64, seed=0, config=cfg)   # float32 [64, 3, 32, 32] in [-1, 1]
objects = detect(images[0])                            # read an image back into objects
"""

from hwaksan.data.shapes.caption_parser import Mention, Prompt, parse_caption, scene_prompt
from hwaksan.data.shapes.captions import shapes_vocabulary
from hwaksan.data.shapes.controls import CONTROLS, control_image, control_map
from hwaksan.data.shapes.dataset import ShapesDataset
from hwaksan.data.shapes.detector import DetectedObject, Parse, detect, parse
from hwaksan.data.shapes.renderer import (
    edge_map,
    render,
    render_batch,
    segmentation_mask,
    to_tensor,
)
from hwaksan.data.shapes.scene import Scene, ShapeObject, moved, sample_scene
from hwaksan.data.shapes.world import (
    ALL_SHAPES,
    BACKGROUNDS,
    BASE_SHAPES,
    COLORS,
    NEW_SHAPES,
    PALETTE,
    POSITIONS,
    RELATIONS,
    SIZES,
    ShapesConfig,
    class_id,
    class_name,
    num_classes,
    position_word,
)

__all__ = [
    "shapes_vocabulary",
    "moved",
    "ALL_SHAPES",
    "BACKGROUNDS",
    "BASE_SHAPES",
    "CONTROLS",
    "COLORS",
    "NEW_SHAPES",
    "PALETTE",
    "POSITIONS",
    "RELATIONS",
    "SIZES",
    "class_id",
    "class_name",
    "control_image",
    "control_map",
    "detect",
    "DetectedObject",
    "edge_map",
    "Mention",
    "num_classes",
    "Parse",
    "parse",
    "parse_caption",
    "position_word",
    "Prompt",
    "render",
    "render_batch",
    "sample_scene",
    "Scene",
    "scene_prompt",
    "segmentation_mask",
    "ShapeObject",
    "ShapesConfig",
    "ShapesDataset",
    "to_tensor",
]
