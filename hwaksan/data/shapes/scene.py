"""A scene: 1-3 non-overlapping objects with full ground truth, drawn from a seed."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hwaksan.data.shapes.captions import phrasings as all_phrasings
from hwaksan.data.shapes.captions import pick
from hwaksan.data.shapes.geometry import EXTENT
from hwaksan.data.shapes.world import (
    SIZE_RADIUS,
    ShapesConfig,
    class_id,
    position_word,
    relation_word,
)


@dataclass(frozen=True)
class ShapeObject:
    """One flat shape: what it is, its area centroid (pixels, x right, y down) and scale r."""

    shape: str
    color: str
    size: str  # "small" | "large"
    centroid: tuple[float, float]  # (x, y) in pixels
    radius: float  # scale r in pixels (the unit shape's half-extent, see geometry.py)
    resolution: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels: the shape's exact extent."""
        x0, y0, x1, y1 = EXTENT[self.shape]
        (cx, cy), r = self.centroid, self.radius
        return (cx + r * x0, cy + r * y0, cx + r * x1, cy + r * y1)

    @property
    def position(self) -> str:
        """The 3x3 grid word of the centroid: "top left", "center", ..."""
        return position_word(*self.centroid, self.resolution)

    def to_dict(self) -> dict:
        d = dict(shape=self.shape, color=self.color, size=self.size, position=self.position)
        return {**d, "centroid": list(self.centroid), "radius": self.radius, "box": list(self.box)}


@dataclass(frozen=True)
class Scene:
    """Objects plus the caption(s) and class id that describe them."""

    objects: tuple[ShapeObject, ...]
    resolution: int
    background: str
    captions: tuple[str, ...]  # every phrasing drawn for this scene
    caption: str  # the chosen one
    class_id: int  # shape x color of the first object (meaningful for single-object scenes)

    def relation(self, i: int, j: int) -> str:
        """Where object i lies relative to object j ("left of", "above", ...)."""
        return relation_word(self.objects[i].centroid, self.objects[j].centroid)

    def to_dict(self) -> dict:
        """JSON-able ground truth (e.g. a line of a metadata.jsonl)."""
        return dict(
            text=self.caption, captions=list(self.captions), class_id=self.class_id,
            resolution=self.resolution, background=self.background,
            objects=[o.to_dict() for o in self.objects],
        )  # fmt: skip


def _gap(resolution: int) -> float:
    """Empty pixels kept between object boxes so the detector can always tell them apart."""
    return max(2.0, 0.06 * resolution)


def _place(rng: np.random.Generator, shape: str, r: float, placed: list[ShapeObject], R: int):
    """A centroid for a new object, or None: inside the image (1 px border), clear of the
    others by a gap, and not within 4% of a 3x3-grid line (so position words are unambiguous).
    Draws 64 candidates at once and keeps the first that passes."""
    x0, y0, x1, y1 = EXTENT[shape]
    lo, hi = np.array([1 - x0 * r, 1 - y0 * r]), np.array([R - 1 - x1 * r, R - 1 - y1 * r])
    c = lo + (hi - lo) * rng.random((64, 2))  # (64, 2) candidate centroids
    ok = ~(np.abs(c[:, :, None] - np.array([R / 3, 2 * R / 3])) < 0.04 * R).any((1, 2))
    boxes = np.concatenate([c + r * np.array([x0, y0]), c + r * np.array([x1, y1])], 1)
    gap = _gap(R)
    for o in placed:
        b = o.box
        ok &= ~(
            (boxes[:, 0] < b[2] + gap) & (b[0] < boxes[:, 2] + gap)
            & (boxes[:, 1] < b[3] + gap) & (b[1] < boxes[:, 3] + gap)
        )  # fmt: skip
    if len(placed) == 1:  # a pair: keep "left of" vs "above" unambiguous
        d = np.abs(c - np.array(placed[0].centroid))
        ok &= np.abs(d[:, 0] - d[:, 1]) >= 0.08 * R
    hits = np.flatnonzero(ok)
    return (float(c[hits[0], 0]), float(c[hits[0], 1])) if hits.size else None


def _objects(rng: np.random.Generator, config: ShapesConfig) -> tuple[ShapeObject, ...]:
    R, colors = config.resolution, config.object_colors
    while True:  # a crowded draw (3 large objects at 16 px) restarts with new sizes
        n = int(rng.integers(config.min_objects, config.max_objects + 1))
        placed: list[ShapeObject] = []
        for _ in range(n):
            shape, color = pick(rng, config.shapes), pick(rng, colors)
            size = pick(rng, config.sizes)
            lo, hi = SIZE_RADIUS[size]
            r = R * (lo + (hi - lo) * rng.random())
            c = _place(rng, shape, r, placed, R)
            if c is None:
                break
            placed.append(ShapeObject(shape, color, size, c, float(r), R))
        if len(placed) == n:
            return tuple(placed)


def sample_scene(rng_or_seed: np.random.Generator | int, config: ShapesConfig) -> Scene:
    """Draw a scene (objects, captions, class id) deterministically from a seed or a Generator."""
    rng = np.random.default_rng(rng_or_seed)
    objects = _objects(rng, config)
    phrasings = all_phrasings(objects, rng)
    return Scene(
        objects=objects,
        resolution=config.resolution,
        background=config.background,
        captions=phrasings,
        caption=pick(rng, phrasings),
        class_id=class_id(objects[0].shape, objects[0].color, config),
    )


def moved(scene: Scene, rng: np.random.Generator) -> Scene:
    """The same objects (shape, color, size, scale) at new places, drawn by `sample_scene`'s
    placement rules; captions are left as they were (a reference image, not a captioned one)."""
    R = scene.resolution
    while True:  # a placement that boxes an object in restarts
        placed: list[ShapeObject] = []
        for o in scene.objects:
            c = _place(rng, o.shape, o.radius, placed, R)
            if c is None:
                break
            placed.append(replace(o, centroid=c))
        if len(placed) == len(scene.objects):
            return replace(scene, objects=tuple(placed))
