"""How well generated images follow a control map: the IoU of the objects the shapes detector
finds with the control's object mask (ControlNet, Zhang et al. 2023, measures segmentation
controls by mIoU of a segmenter on the outputs; the analytic detector plays the segmenter here).

An object counts only if the detector accepts it (a known shape in one palette color), so a
blob in the right place does not score: the mask is the detected shapes re-rendered at their
fitted centroid and scale, covered at least half a pixel, as `segmentation_mask` draws a scene.
"""

from __future__ import annotations

import numpy as np

from hwaksan.data.shapes.detector import DetectedObject, detect
from hwaksan.data.shapes.renderer import object_coverage, patch_size
from hwaksan.data.shapes.scene import ShapeObject

IOU_THRESHOLD = 0.8  # a sample follows its control when its IoU is at least this


def detected_mask(objects: list[DetectedObject], resolution: int) -> np.ndarray:
    """bool [H, W]: where the detected objects are, each re-rendered from its fitted shape."""
    mask = np.zeros((resolution, resolution), bool)
    if not objects:
        return mask
    shapes = [
        ShapeObject(o.shape, o.color, o.size, o.centroid, o.radius, resolution) for o in objects
    ]
    P = patch_size(resolution)
    cov, x0, y0 = object_coverage(shapes, resolution)  # (m, P, P)
    for k in range(len(shapes)):
        mask[y0[k] : y0[k] + P, x0[k] : x0[k] + P] |= cov[k] >= 0.5
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a and b| / |a or b| of two bool masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when they do not meet)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def control_iou(images, masks) -> list[float]:
    """Per image (as `detect` reads them), the IoU of its detected objects with its mask
    (bool [H, W]: the control's objects, e.g. `segmentation_mask(scene) > 0`)."""
    out = []
    for image, mask in zip(images, masks):
        objects = detect(image)
        out.append(iou(detected_mask(objects, mask.shape[0]), np.asarray(mask, bool)))
    return out
