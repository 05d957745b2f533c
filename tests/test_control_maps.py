"""The shapes world's control images (silhouettes, edges) and the IoU score that checks a
generated image against one, on real renders where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwaksan.data.shapes import ShapesConfig, control_image, render, render_batch
from hwaksan.data.shapes.renderer import segmentation_mask
from hwaksan.errors import HwaksanError
from hwaksan.eval.control_score import control_iou, iou

CONFIG = ShapesConfig(resolution=64, min_objects=1, max_objects=2)


def test_control_images_are_white_silhouettes_and_edges_on_black():
    images, scenes = render_batch(4, seed=3, config=CONFIG)
    for scene in scenes:
        seg, edges = control_image(scene, "segmentation"), control_image(scene, "edges")
        assert seg.shape == edges.shape == (64, 64, 3) and seg.dtype == np.uint8
        assert set(np.unique(seg)) <= {0, 255} and set(np.unique(edges)) <= {0, 255}
        inside = segmentation_mask(scene) > 0
        assert np.array_equal(seg[..., 0] == 255, inside)
        ink = np.pad(render(scene).sum(-1) > 0, 1)  # (66, 66): on the black background
        near_ink = np.zeros((64, 64), bool)
        for dy in range(3):
            for dx in range(3):
                near_ink |= ink[dy : dy + 64, dx : dx + 64]
        on_edge = edges[..., 0] == 255
        assert on_edge.any() and near_ink[on_edge].all()  # every edge pixel touches an object
        deep = inside.copy()  # 3 px or more inside an object: flat color, no edge
        for shift in range(1, 4):
            for axis in (0, 1):
                deep &= np.roll(inside, shift, axis) & np.roll(inside, -shift, axis)
        assert not on_edge[deep].any()
    with pytest.raises(HwaksanError, match="unknown control"):
        control_image(scenes[0], "depth")


def test_renders_score_an_iou_near_one_and_moved_or_blank_images_do_not():
    images, scenes = render_batch(24, seed=4, config=CONFIG)
    masks = [segmentation_mask(s) > 0 for s in scenes]
    assert min(control_iou(images, masks)) >= 0.95
    moved = images.roll(shifts=12, dims=-1)  # every object 12 px to the right (wrapping)
    assert max(control_iou(moved, masks)) < 0.8
    blank = -torch.ones(1, 3, 64, 64)  # nothing drawn
    assert control_iou(blank, masks[:1]) == [0.0]
    assert iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0
