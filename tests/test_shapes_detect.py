"""The analytic detector against the ground truth of fresh renders, noise, and near-misses."""

import numpy as np
import pytest
import torch
from PIL import Image

from hwaksan.data import shapes
from hwaksan.data.shapes.geometry import polygon_sdf
from hwaksan.errors import HwaksanError


def _truth(objects):
    return sorted((o.shape, o.color, o.size, o.position) for o in objects)


def accuracy(resolution, n_objects, shape_set, n, seed=11, noise=0.0):
    """Fraction of fresh renders whose every object (shape, color, size, position) is read back."""
    cfg = shapes.ShapesConfig(resolution, n_objects, n_objects, shapes=shape_set)
    x, scenes = shapes.render_batch(n, seed=seed, config=cfg)
    if noise:
        x = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return np.mean([_truth(shapes.detect(im)) == _truth(s.objects) for im, s in zip(x, scenes)])


CONFIGS = [(r, k, "base") for r in (16, 32, 64) for k in (1, 2, 3)]
CONFIGS += [(r, k, "new") for r in (32, 64) for k in (1, 2, 3)]
SETS = {"base": shapes.BASE_SHAPES, "new": shapes.NEW_SHAPES}


def _bar(n_objects):
    return 1.0 if n_objects == 1 else 0.99


@pytest.mark.parametrize("resolution,n_objects,shape_set", CONFIGS + [(16, 1, "new")])
def test_detector_accuracy_on_2000_fresh_renders(resolution, n_objects, shape_set):
    """The issue's bar: 100% on single objects, >= 99% on two and three (about 60 s in all)."""
    assert accuracy(resolution, n_objects, SETS[shape_set], 2000, seed=12) >= _bar(n_objects)


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_mild_noise_still_parses(resolution):
    acc = accuracy(resolution, 3, shapes.ALL_SHAPES, 100, seed=13, noise=0.05)
    assert acc >= 0.99


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_no_object_in_noise_or_blank_images(resolution):
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, resolution, resolution, generator=g) for _ in range(20)]
    images += [torch.rand(3, resolution, resolution, generator=g) * 2 - 1 for _ in range(20)]
    images += [torch.full((3, resolution, resolution), v) for v in (-1.0, 0.0, 1.0)]
    assert all(shapes.detect(im) == [] for im in images)
    assert all(shapes.parse(im).rejected for im in images[:40])  # noise is junk, not "empty"


def _single(resolution=32, n=60, seed=14):
    cfg = shapes.ShapesConfig(resolution, 1, 1, colors=shapes.COLORS[:-1])  # no white
    return shapes.render_batch(n, seed=seed, config=cfg)


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_washed_out_colors_do_not_parse(resolution):
    x, _ = _single(resolution)
    u = (x + 1) / 2
    ink = (u.amax(1, keepdim=True) > 0.2).float()
    for w in (0.3, 0.5):
        pastel = (u * (1 - w) + w * ink) * 2 - 1  # object pixels mixed toward white
        assert sum(len(shapes.detect(im)) for im in pastel) == 0


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_faint_and_off_palette_objects_do_not_parse(resolution):
    x, _ = _single(resolution)
    for intensity in (0.6, 0.8):
        faint = (x + 1) * intensity - 1
        assert sum(len(shapes.detect(im)) for im in faint) == 0
    orange = torch.tensor([1.0, 0.5, 0.0])[:, None, None]
    off = ((x + 1) / 2).amax(0, keepdim=True) * orange * 2 - 1  # every object orange
    assert sum(len(shapes.detect(im)) for im in off) == 0


def _draw(sdf_fn, resolution=32, color=(255, 0, 0)):
    g = np.arange(resolution) + 0.5
    X, Y = np.meshgrid(g, g)
    a = np.clip(0.5 - sdf_fn(X - resolution / 2, Y - resolution / 2), 0, 1)
    return (a[..., None] * np.array(color)).round().astype(np.uint8)


@pytest.mark.parametrize("resolution", [32, 64])
def test_unknown_shapes_are_rejected(resolution):
    r = 0.2 * resolution
    rect = np.array([(-1, -0.45), (1, -0.45), (1, 0.45), (-1, 0.45)])
    diamond = np.array([(0, -1.0), (1, 0), (0, 1), (-1, 0)])
    unknown = {
        "rectangle": lambda x, y: r * polygon_sdf(x / r, y / r, rect),
        "ring": lambda x, y: np.abs(np.hypot(x, y) - 0.7 * r) - 0.3 * r,
    }
    if resolution == 64:  # at 32 px a diamond's misfit as a circle (0.18) is within tolerance
        unknown["diamond"] = lambda x, y: r * polygon_sdf(x / r, y / r, diamond)
    for name, fn in unknown.items():
        p = shapes.parse(_draw(fn, resolution))
        assert p.objects == [] and len(p.rejected) == 1, name
    circle = shapes.detect(_draw(lambda x, y: np.hypot(x, y) - r, resolution))
    assert [(o.shape, o.color, o.size, o.position) for o in circle] == [
        ("circle", "red", "large", "center")
    ]


def test_every_input_type_reads_the_same():
    scene = shapes.sample_scene(5, shapes.ShapesConfig(min_objects=3, max_objects=3))
    arr = shapes.render(scene)
    results = [shapes.detect(arr), shapes.detect(Image.fromarray(arr))]
    results.append(shapes.detect(shapes.to_tensor(arr)))
    assert len(results[0]) == 3
    for other in results[1:]:  # float rounding may differ (memory alignment), nothing else
        for a, b in zip(results[0], other, strict=True):
            assert (a.shape, a.color, a.size, a.position) == (b.shape, b.color, b.size, b.position)
            assert np.allclose(a.centroid, b.centroid, atol=1e-4)


@pytest.mark.parametrize("background", ["white", "gray", "navy"])
def test_other_backgrounds(background):
    cfg = shapes.ShapesConfig(background=background)
    x, scenes = shapes.render_batch(100, seed=15, config=cfg)
    hits = [_truth(shapes.detect(im)) == _truth(s.objects) for im, s in zip(x, scenes)]
    assert np.mean(hits) >= 0.99


def test_geometry_of_detected_objects():
    x, scenes = shapes.render_batch(50, seed=16, config=shapes.ShapesConfig(resolution=64))
    for im, s in zip(x, scenes):
        found = shapes.detect(im)
        for o in s.objects:
            d = min(found, key=lambda d: np.hypot(*np.subtract(d.centroid, o.centroid)))
            assert (d.shape, d.color) == (o.shape, o.color)
            assert np.allclose(d.centroid, o.centroid, atol=0.1)
            assert d.radius == pytest.approx(o.radius, rel=0.02)
            assert np.allclose(d.box, o.box, atol=0.3)


def test_images_the_detector_cannot_read_are_user_errors():
    for bad in (torch.zeros(1, 32, 32), torch.zeros(3, 32, 48), np.zeros((32, 32), np.uint8)):
        with pytest.raises(HwaksanError, match="square RGB"):
            shapes.detect(bad)
