"""Rendering scenes to anti-aliased images, vectorized over every object of a batch, and the
control maps (edges, segmentation mask) that go with them."""

from __future__ import annotations

import math

import numpy as np
import torch

from hwaksan.data.shapes.geometry import EXTENT, coverage
from hwaksan.data.shapes.scene import Scene, ShapeObject, sample_scene
from hwaksan.data.shapes.watermark import stamp_watermark
from hwaksan.data.shapes.world import BACKGROUNDS, PALETTE, SIZE_RADIUS, ShapesConfig


def patch_size(resolution: int) -> int:
    """Side of the square pixel patch that holds any object at this resolution."""
    half = max(max(abs(v) for v in e) for e in EXTENT.values())
    return math.ceil(2 * half * SIZE_RADIUS["large"][1] * resolution) + 3


def object_coverage(objects: list[ShapeObject], resolution: int):
    """Coverage patches [m, P, P] of m objects, and each patch's top-left pixel (x0 [m], y0 [m])."""
    P = patch_size(resolution)
    cx = np.array([o.centroid[0] for o in objects], np.float32)
    cy = np.array([o.centroid[1] for o in objects], np.float32)
    r = np.array([o.radius for o in objects], np.float32)
    x0 = np.clip(np.floor(cx - P / 2).astype(np.int64), 0, resolution - P)
    y0 = np.clip(np.floor(cy - P / 2).astype(np.int64), 0, resolution - P)
    grid = np.arange(P, dtype=np.float32) + 0.5
    cov = np.zeros((len(objects), P, P), np.float32)
    for shape in {o.shape for o in objects}:
        i = np.array([k for k, o in enumerate(objects) if o.shape == shape])
        px = (x0[i, None, None] + grid[None, None, :]).astype(np.float32)  # (m, 1, P)
        py = (y0[i, None, None] + grid[None, :, None]).astype(np.float32)  # (m, P, 1)
        px, py = np.broadcast_arrays(px, py)
        cov[i] = coverage(shape, px, py, cx[i, None, None], cy[i, None, None], r[i, None, None])
    return cov, x0, y0


def _render(scenes: list[Scene], resolution: int) -> np.ndarray:
    """uint8 [n, H, W, 3]: every object of every scene composited over its background."""
    n, R, P = len(scenes), resolution, patch_size(resolution)
    canvas = np.empty((n, R, R, 3), np.float32)
    canvas[:] = np.array([BACKGROUNDS[s.background] for s in scenes], np.float32)[:, None, None]
    for slot in range(max(len(s.objects) for s in scenes)):  # one object per image per pass
        img = np.array([k for k, s in enumerate(scenes) if len(s.objects) > slot])
        objects = [scenes[k].objects[slot] for k in img]
        cov, x0, y0 = object_coverage(objects, R)
        color = np.array([PALETTE[o.color] for o in objects], np.float32)[:, None, None]
        rows = y0[:, None, None] + np.arange(P)[None, :, None]  # (m, P, 1)
        cols = x0[:, None, None] + np.arange(P)[None, None, :]  # (m, 1, P)
        under = canvas[img[:, None, None], rows, cols]  # (m, P, P, 3)
        a = cov[..., None]
        canvas[img[:, None, None], rows, cols] = under * (1 - a) + color * a
    return np.rint(canvas).astype(np.uint8)


def render(scene: Scene, resolution: int | None = None) -> np.ndarray:
    """The scene as a uint8 [H, W, 3] image (resolution defaults to the scene's own)."""
    if resolution is not None and resolution != scene.resolution:
        scale = resolution / scene.resolution
        scene = _rescaled(scene, scale, resolution)
    return _render([scene], scene.resolution)[0]


def _rescaled(scene: Scene, scale: float, resolution: int) -> Scene:
    objects = tuple(
        ShapeObject(o.shape, o.color, o.size, (o.centroid[0] * scale, o.centroid[1] * scale),
                    o.radius * scale, resolution)
        for o in scene.objects
    )  # fmt: skip
    return Scene(
        objects, resolution, scene.background, scene.captions, scene.caption, scene.class_id
    )


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
    return x.movedim(-1, -3).contiguous()


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for scene `index` of a seeded stream (datasets and batches share it)."""
    return np.random.default_rng((seed, index))


def render_batch(
    n: int, seed: int = 0, config: ShapesConfig | None = None, start: int = 0
) -> tuple[torch.Tensor, list[Scene]]:
    """n scenes (indices start..start+n of the seeded stream) as float32 [n, 3, H, W] in [-1, 1].

    Item i equals `ShapesDataset(config, seed=seed)[start + i]["image"]`.
    """
    config = config or ShapesConfig()
    scenes = [sample_scene(scene_rng(seed, start + i), config) for i in range(n)]
    R, chunk = config.resolution, 256  # chunks keep temporaries [m, P, P, edges] in cache
    images = [_render(scenes[i : i + chunk], R) for i in range(0, n, chunk)]
    images = np.concatenate(images) if images else np.zeros((0, R, R, 3), np.uint8)
    if config.watermark:
        stamp_watermark(images)
    return to_tensor(images), scenes


def segmentation_mask(scene: Scene) -> np.ndarray:
    """int64 [H, W]: 0 for background, k + 1 where object k covers at least half a pixel."""
    R, P = scene.resolution, patch_size(scene.resolution)
    mask = np.zeros((R, R), np.int64)
    cov, x0, y0 = object_coverage(list(scene.objects), R)
    for k in range(len(scene.objects)):
        window = mask[y0[k] : y0[k] + P, x0[k] : x0[k] + P]
        window[cov[k] >= 0.5] = k + 1
    return mask


def edge_map(image: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """float32 [H, W] in {0, 1}: Sobel gradient magnitude (max over RGB, in units of a full
    0-255 step) above `threshold` — a Canny-like edge control map (Sobel & Feldman 1968)."""
    x = np.pad(image.astype(np.float32) / 255.0, ((1, 1), (1, 1), (0, 0)), mode="edge")
    gx = (x[:-2, 2:] + 2 * x[1:-1, 2:] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[1:-1, :-2] + x[2:, :-2])
    gy = (x[2:, :-2] + 2 * x[2:, 1:-1] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[:-2, 1:-1] + x[:-2, 2:])
    magnitude = np.sqrt(gx * gx + gy * gy).max(-1)
    return (magnitude > threshold).astype(np.float32)
