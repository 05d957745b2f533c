"""Unit shapes as signed-distance functions, and anti-aliased coverage from them.

Every shape is defined at scale r = 1 with its area centroid at the origin (y points down, as in
images), so an object is (shape, centroid, r). Coverage of a pixel is the analytic box-filter
approximation clip(0.5 - sdf_in_pixels, 0, 1) (the usual SDF anti-aliasing, e.g. Green 2007).
"""

from __future__ import annotations

import math

import numpy as np


def _regular(n: int, radius: float, start: float = -math.pi / 2) -> np.ndarray:
    a = start + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


def _star(points: int = 5, outer: float = 1.15, inner: float = 0.55) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    a = -math.pi / 2 + math.pi * np.arange(2 * points) / points
    return np.stack([radii * np.cos(a), radii * np.sin(a)], 1)


def _cross(arm: float = 1.0, half_width: float = 0.36) -> np.ndarray:
    l, w = arm, half_width
    return np.array(
        [(-w, -l), (w, -l), (w, -w), (l, -w), (l, w), (w, w),
         (w, l), (-w, l), (-w, w), (-l, w), (-l, -w), (-w, -w)]
    )  # fmt: skip


def _heart(n: int = 36) -> np.ndarray:
    """The classic parametric heart (x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - ...), y down."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], 1) / 15.0


def _centered(poly: np.ndarray) -> np.ndarray:
    """Shift a polygon so its area centroid (shoelace formula) sits at the origin."""
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    c = np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)
    return poly - c


# Each non-circle shape is a polygon (vertices at r = 1, centroid at the origin).
POLYGONS: dict[str, np.ndarray] = {
    "square": np.array([(-0.88, -0.88), (0.88, -0.88), (0.88, 0.88), (-0.88, 0.88)]),
    "triangle": _regular(3, 1.2),
    "star": _star(),
    "heart": _centered(_heart()),
    "cross": _cross(),
}


def _extent(shape: str) -> tuple[float, float, float, float]:
    if shape == "circle":
        return (-1.0, -1.0, 1.0, 1.0)
    p = POLYGONS[shape]
    return (*p.min(0).tolist(), *p.max(0).tolist())


def _area(shape: str) -> float:
    if shape == "circle":
        return math.pi
    x, y = POLYGONS[shape][:, 0], POLYGONS[shape][:, 1]
    return float(abs((x * np.roll(y, -1) - np.roll(x, -1) * y).sum()) / 2)


SHAPE_NAMES = ("circle", *POLYGONS)
EXTENT = {s: _extent(s) for s in SHAPE_NAMES}  # (x0, y0, x1, y1) at r = 1
UNIT_AREA = {s: _area(s) for s in SHAPE_NAMES}  # area at r = 1


def _edges(poly: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-edge tables for `polygon_sdf`, in float32: start x, y, end y, direction, 1/length^2."""
    vi, vj = poly, np.roll(poly, 1, axis=0)  # edge from vj to vi
    ex, ey = vj[:, 0] - vi[:, 0], vj[:, 1] - vi[:, 1]
    tables = (vi[:, 0], vi[:, 1], vj[:, 1], ex, ey, 1.0 / (ex * ex + ey * ey))
    return tuple(t.astype(np.float32) for t in tables)


def polygon_sdf(px: np.ndarray, py: np.ndarray, poly) -> np.ndarray:
    """Exact signed distance to a polygon (negative inside), vectorized (Quilez, sdPolygon).

    `poly` is a vertex array [E, 2] or its `_edges` tables."""
    vx, vy, vjy, ex, ey, inv_ee = _edges(poly) if isinstance(poly, np.ndarray) else poly
    wx, wy = px[..., None] - vx, py[..., None] - vy  # (..., E)
    t = np.clip((wx * ex + wy * ey) * inv_ee, 0.0, 1.0)
    dx, dy = wx - ex * t, wy - ey * t
    dist = np.sqrt((dx * dx + dy * dy).min(-1))
    # Crossing-number parity: a point is inside when a ray crosses an odd number of edges.
    below_i, below_j = wy >= 0, py[..., None] < vjy
    left = ex * wy > ey * wx
    inside = np.logical_xor.reduce((below_i == below_j) & (below_i == left), axis=-1)
    return np.where(inside, -dist, dist)


_EDGES = {s: _edges(p) for s, p in POLYGONS.items()}


def unit_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (at r = 1) of points (u, v) to a unit shape."""
    if shape == "circle":
        return np.sqrt(u * u + v * v) - 1.0
    return polygon_sdf(u, v, _EDGES[shape])


def coverage(shape: str, px: np.ndarray, py: np.ndarray, cx, cy, r) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of pixels centred at (px, py) by a shape at (cx, cy, r).

    cx, cy, r broadcast against px, py (e.g. shape [N, 1, 1] for N objects on [N, P, P] grids).
    """
    sdf = r * unit_sdf(shape, (px - cx) / r, (py - cy) / r)
    return np.clip(0.5 - sdf, 0.0, 1.0)
