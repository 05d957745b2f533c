"""Read an image back into shapes-world objects, analytically and deterministically.

1. background = the median border color; every pixel is explained as bg + alpha (c - bg) for the
   palette color c that fits it best (flat colors over a plain background make alpha the exact
   anti-aliased coverage);
2. "ink" pixels (far from the background) form 8-connected components; each must be one palette
   color, else it is rejected;
3. each component's coverage map fixes its area and centroid, hence, for every candidate shape,
   its scale r; the candidate whose rendered coverage fits best (L1) is the shape, and a poor
   best fit, a faint peak or an implausible scale rejects the component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hwaksan.data.shapes.geometry import EXTENT, UNIT_AREA, coverage
from hwaksan.data.shapes.world import (
    ALL_SHAPES,
    COLORS,
    PALETTE,
    SIZE_RADIUS,
    position_word,
    size_word,
)
from hwaksan.errors import HwaksanError

INK = 0.25  # RGB distance (0-1 units) from the background that makes a pixel ink
COLOR_TOL = 0.15  # largest RGB distance of an ink pixel from its color's line through the bg
PURITY = 0.9  # fraction of a component's ink that its one color must explain
# Largest L1 misfit (relative to area) of the best shape template: FIT_TOL + FIT_EDGE / r. The
# misfit of a true shape comes from its edge pixels (pixelation, noise), so it scales as 1 / r.
FIT_TOL, FIT_EDGE = 0.08, 0.5
PEAK = 0.9  # smallest ratio of a component's peak coverage to its template's (faint ones fail)
SPECK = 0.008  # components with fewer ink pixels than SPECK * resolution^2 are specks, dropped
R_RANGE = (0.75 * SIZE_RADIUS["small"][0], 1.3 * SIZE_RADIUS["large"][1])  # plausible r / res


@dataclass(frozen=True)
class DetectedObject:
    """An object read from an image; geometry in pixels (x right, y down)."""

    shape: str
    color: str
    size: str
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) of the fitted shape
    centroid: tuple[float, float]  # coverage-weighted (x, y)
    position: str  # 3x3 grid word of the centroid
    radius: float  # fitted scale r in pixels
    fit_error: float  # L1 misfit of the shape template / area


@dataclass
class Parse:
    """Everything the detector saw: accepted objects and what it could not explain."""

    objects: list[DetectedObject]
    rejected: list[str] = field(default_factory=list)  # why each non-speck component failed
    junk_pixels: int = 0  # ink pixels in dropped specks
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB in [0, 1]
    resolution: int = 0


def as_array(image) -> np.ndarray:
    """PIL image, uint8 [H, W, 3] array or float [3, H, W] tensor in [-1, 1] -> float [H, W, 3]
    in [0, 1]."""
    if isinstance(image, torch.Tensor):
        x = ((image.detach().float().cpu().clamp(-1, 1) + 1) / 2).movedim(0, -1).numpy()
    else:
        x = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim != 3 or x.shape[2] != 3 or x.shape[0] != x.shape[1] or x.shape[0] < 8:
        raise HwaksanError(f"the shapes detector reads square RGB images; got shape {x.shape}.")
    return x


def _neighbourhood(x: np.ndarray, reduce) -> np.ndarray:
    """reduce (np.maximum or np.logical_or) over each pixel's 3x3 neighbourhood, zero outside."""
    H, W = x.shape
    p = np.zeros((H + 2, W + 2), x.dtype)
    p[1:-1, 1:-1] = x
    rows = reduce(reduce(p[:-2], p[1:-1]), p[2:])  # (H, W + 2)
    return reduce(reduce(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels (0 = off) by iterated 3x3 max-propagation of pixel ids."""
    H, W = mask.shape
    labels = np.where(mask, np.arange(1, H * W + 1).reshape(H, W), 0)
    while True:
        new = np.where(mask, _neighbourhood(labels, np.maximum), 0)
        if np.array_equal(new, labels):
            return labels
        labels = new


def _color_fit(img: np.ndarray, bg: np.ndarray, colors: tuple[str, ...]):
    """Per color k: alpha_k [K, H, W] (unclipped) and residual_k of the best alpha in [0, 1]."""
    c = np.array([PALETTE[k] for k in colors], np.float32) / 255.0 - bg  # (K, 3)
    diff = img - bg  # (H, W, 3)
    alpha = np.einsum("hwc,kc->khw", diff, c) / (c * c).sum(1)[:, None, None]
    fit = np.clip(alpha, 0, 1)[..., None] * c[:, None, None]  # (K, H, W, 3)
    residual = np.sqrt(((diff[None] - fit) ** 2).sum(-1))
    return alpha, residual


def _fit_shape(alpha, region, others, shapes, R):
    """Best shape template for one component's coverage map: (shape, r, centroid, error, peak)."""
    ys, xs = np.nonzero(region)
    a = alpha[ys, xs]
    area = float(a.sum())
    if area <= 0:
        return None
    cx, cy = float((a * (xs + 0.5)).sum() / area), float((a * (ys + 0.5)).sum() / area)
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, R)
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, R)
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    patch, weight = alpha[y0:y1, x0:x1], ~others[y0:y1, x0:x1]
    best = None
    for s in shapes:
        r = (area / UNIT_AREA[s]) ** 0.5
        template = coverage(s, px, py, cx, cy, r)
        error = float((np.abs(patch - template) * weight).sum() / area)
        if best is None or error < best[3]:
            peak = float((patch * weight).max() / max(template.max(), 1e-6))  # ~1 unless faint
            best = (s, r, (cx, cy), error, peak)
    return best


def _accept(fit, R: int) -> str | None:
    """Why a fitted component is not a valid object, or None when it is."""
    shape, r, _, error, peak = fit
    if error > FIT_TOL + FIT_EDGE / r:
        return f"no shape fits (best {shape}, misfit {error:.2f})"
    if peak < PEAK:
        return f"faint (peak coverage {peak:.2f} of the template's)"
    if not R_RANGE[0] <= r / R <= R_RANGE[1]:
        return f"implausible scale {r / R:.3f} of the image"
    return None


def parse(image, shapes: tuple[str, ...] = ALL_SHAPES, colors: tuple[str, ...] = COLORS) -> Parse:
    """Segment, fit and vet every colored component of an image (see the module docstring)."""
    img = as_array(image)
    R = img.shape[0]
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    bg = np.median(border, 0)
    visible = tuple(k for k in colors if np.linalg.norm(np.array(PALETTE[k]) / 255 - bg) > 0.3)
    alpha, residual = _color_fit(img, bg, visible)
    ink = np.linalg.norm(img - bg, axis=-1) > INK
    labels = label_components(ink)
    best_color = residual.argmin(0)
    out = Parse([], background=tuple(float(v) for v in bg), resolution=R)
    for lab in np.unique(labels[labels > 0]):
        comp = labels == lab
        if comp.sum() < SPECK * R * R:
            out.junk_pixels += int(comp.sum())
            continue
        k = np.bincount(best_color[comp], minlength=len(visible)).argmax()
        if (residual[k][comp] < COLOR_TOL).mean() < PURITY:
            out.rejected.append("not one palette color")
            continue
        region = _neighbourhood(comp, np.logical_or) & ~(ink & ~comp)
        fit = _fit_shape(alpha[k], region, ink & ~comp, shapes, R)
        why = "empty" if fit is None else _accept(fit, R)
        if why:
            out.rejected.append(why)
            continue
        out.objects.append(_detected(fit, visible[k], R))
    return out


def _detected(fit, color: str, R: int) -> DetectedObject:
    shape, r, (cx, cy), error, _ = fit
    x0, y0, x1, y1 = EXTENT[shape]
    box = (cx + r * x0, cy + r * y0, cx + r * x1, cy + r * y1)
    size = size_word(r, R)
    return DetectedObject(shape, color, size, box, (cx, cy), position_word(cx, cy, R), r, error)


def detect(image, shapes: tuple[str, ...] = ALL_SHAPES) -> list[DetectedObject]:
    """The valid objects in an image (PIL, uint8 [H, W, 3], or [3, H, W] tensor in [-1, 1])."""
    return parse(image, shapes).objects
