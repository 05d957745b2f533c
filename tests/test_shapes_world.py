"""The shapes world: determinism, geometry, captions and control maps against the ground truth."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hwaksan.data import shapes
from hwaksan.data.shapes.captions import INVERSE, SHAPE_WORDS
from hwaksan.data.shapes.geometry import UNIT_AREA, coverage
from hwaksan.data.shapes.renderer import object_coverage
from hwaksan.errors import HwaksanError

ALL = shapes.ShapesConfig(shapes=shapes.ALL_SHAPES)


def test_same_seed_same_scenes_and_pixels():
    a, scenes_a = shapes.render_batch(32, seed=7, config=ALL)
    b, scenes_b = shapes.render_batch(32, seed=7, config=ALL)
    c, _ = shapes.render_batch(32, seed=8, config=ALL)
    assert torch.equal(a, b) and scenes_a == scenes_b
    assert not torch.equal(a, c)


def test_batch_dataset_and_single_render_agree():
    ds = shapes.ShapesDataset(ALL, length=20, seed=3)
    batch, scenes = shapes.render_batch(10, seed=3, config=ALL, start=5)
    for i in range(10):
        assert scenes[i] == ds.scene(5 + i)
        assert torch.equal(batch[i], ds[5 + i]["image"])
        assert torch.equal(batch[i], shapes.to_tensor(shapes.render(scenes[i])))


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_resolutions_ranges_and_object_counts(resolution):
    cfg = shapes.ShapesConfig(resolution=resolution, shapes=shapes.ALL_SHAPES)
    x, scenes = shapes.render_batch(200, seed=0, config=cfg)
    assert x.shape == (200, 3, resolution, resolution) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    counts = {len(s.objects) for s in scenes}
    assert counts == {1, 2, 3}
    for s in scenes:
        for o in s.objects:
            assert o.shape in shapes.ALL_SHAPES and o.color in shapes.COLORS
            x0, y0, x1, y1 = o.box
            assert 1 <= x0 and 1 <= y0 and x1 <= resolution - 1 and y1 <= resolution - 1


def test_no_overlaps_and_a_clear_gap():
    cfg = shapes.ShapesConfig(resolution=16, min_objects=3, shapes=shapes.ALL_SHAPES)
    _, scenes = shapes.render_batch(300, seed=1, config=cfg)
    for s in scenes:
        cov, x0, y0 = object_coverage(list(s.objects), 16)
        full = np.zeros((len(s.objects), 16, 16))
        for k in range(len(s.objects)):
            full[k, y0[k] : y0[k] + cov.shape[1], x0[k] : x0[k] + cov.shape[2]] = cov[k]
        touched = (full > 0).sum(0)
        assert touched.max() <= 1  # no pixel is touched by two objects (anti-aliasing included)


def test_pixels_are_flat_palette_colors_over_the_background():
    scene = shapes.sample_scene(0, shapes.ShapesConfig(resolution=64, max_objects=1))
    img = shapes.render(scene).reshape(-1, 3).astype(float)
    color = np.array(shapes.PALETTE[scene.objects[0].color], float)
    alpha = img @ color / (color @ color)
    assert np.abs(img - alpha[:, None] * color).max() <= 1.0  # every pixel on the bg-color line
    o = scene.objects[0]
    assert alpha.sum() == pytest.approx(UNIT_AREA[o.shape] * o.radius**2, rel=0.02)


def test_coverage_integrates_to_the_shape_area():
    g = np.arange(0, 40, dtype=np.float32) + 0.5
    px, py = np.meshgrid(g, g)
    for s in shapes.ALL_SHAPES:
        area = coverage(s, px, py, 20.3, 19.8, 9.0).sum()
        assert area == pytest.approx(UNIT_AREA[s] * 81, rel=0.01), s


def test_captions_mention_what_is_there():
    _, scenes = shapes.render_batch(300, seed=2, config=ALL)
    for s in scenes:
        assert s.caption in s.captions and len(set(s.captions)) >= 3
        for caption in s.captions:
            for o in s.objects:
                assert o.color in caption
                assert any(w in caption for w in SHAPE_WORDS[o.shape])


def test_captions_vary_across_scenes():
    _, scenes = shapes.render_batch(200, seed=4, config=shapes.ShapesConfig(max_objects=1))
    templates = {s.caption.split()[0] for s in scenes}
    assert len(templates) >= 5  # articles, prefixes, positions first, sizes, colors...


def test_control_maps_agree_with_the_objects():
    ds = shapes.ShapesDataset(ALL, length=50, seed=5)
    for i in range(50):
        item, scene = ds[i], ds.scene(i)
        H = scene.resolution
        assert item["edges"].shape == (1, H, H) and item["mask"].shape == (H, H)
        assert item["num_objects"] == len(scene.objects)
        for k, o in enumerate(scene.objects):
            ys, xs = np.nonzero(item["mask"].numpy() == k + 1)
            x0, y0, x1, y1 = o.box
            assert xs.min() >= np.floor(x0) and xs.max() <= np.ceil(x1)
            assert ys.min() >= np.floor(y0) and ys.max() <= np.ceil(y1)
            cx, cy = xs.mean() + 0.5, ys.mean() + 0.5  # mask centroid near the true centroid
            assert abs(cx - o.centroid[0]) < 1.0 and abs(cy - o.centroid[1]) < 1.0
            assert torch.allclose(item["boxes"][k], torch.tensor(o.box))
            ring = (item["edges"][0].numpy() > 0)[
                int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1
            ]
            assert ring.any()  # the object's outline shows in the edge map
        assert (item["edges"].numpy() > 0).sum() < 0.6 * H * H
        assert item["objects"][len(scene.objects) :].eq(-1).all()


def test_dataset_collates_mixed_object_counts():
    loader = torch.utils.data.DataLoader(shapes.ShapesDataset(ALL, length=16), batch_size=16)
    batch = next(iter(loader))
    assert batch["image"].shape == (16, 3, 32, 32) and len(batch["caption"]) == 16
    assert batch["objects"].shape == (16, 3, 3) and len(set(batch["num_objects"].tolist())) > 1


def test_class_ids_are_shape_times_color():
    cfg = shapes.ShapesConfig(max_objects=1)
    assert shapes.num_classes(cfg) == 21
    _, scenes = shapes.render_batch(100, seed=0, config=cfg)
    for s in scenes:
        assert shapes.class_name(s.class_id, cfg) == (s.objects[0].shape, s.objects[0].color)
    assert {s.class_id for s in scenes} == set(range(21))


@pytest.mark.parametrize("background", ["white", "gray", "navy"])
def test_other_backgrounds(background):
    cfg = shapes.ShapesConfig(background=background)
    x, scenes = shapes.render_batch(50, seed=0, config=cfg)
    bg = torch.tensor(shapes.BACKGROUNDS[background]) / 127.5 - 1
    assert torch.allclose(x[:, :, 0, 0], bg.expand(50, 3), atol=1e-2)
    assert all(
        shapes.PALETTE[o.color] != shapes.BACKGROUNDS[background] for s in scenes for o in s.objects
    )


def test_config_subsets_and_json_round_trip():
    cfg = shapes.ShapesConfig(
        resolution=16,
        min_objects=2,
        max_objects=2,
        shapes=("star",),
        colors=("red", "blue"),
        sizes=("small",),
    )
    assert shapes.ShapesConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    _, scenes = shapes.render_batch(50, seed=0, config=cfg)
    objs = [o for s in scenes for o in s.objects]
    assert all(len(s.objects) == 2 for s in scenes)
    assert {o.shape for o in objs} == {"star"} and {o.color for o in objs} == {"red", "blue"}
    assert {o.size for o in objs} == {"small"}


@pytest.mark.parametrize(
    "bad",
    [
        dict(resolution=48),
        dict(max_objects=4),
        dict(shapes=("hexagon",)),
        dict(background="plaid"),
        dict(colors=("white",), background="white"),
        dict(min_objects=3, max_objects=2),
    ],
)
def test_bad_config_is_a_user_error(bad):
    with pytest.raises(HwaksanError, match="bad shapes config"):
        shapes.ShapesConfig(**bad)


def test_two_object_relations_are_unambiguous():
    cfg = shapes.ShapesConfig(min_objects=2, max_objects=2)
    _, scenes = shapes.render_batch(200, seed=0, config=cfg)
    for s in scenes:
        (ax, ay), (bx, by) = s.objects[0].centroid, s.objects[1].centroid
        assert abs(abs(ax - bx) - abs(ay - by)) >= 0.08 * 32
        assert s.relation(0, 1) == INVERSE[s.relation(1, 0)]


def test_render_rescales_a_scene():
    scene = shapes.sample_scene(3, shapes.ShapesConfig(resolution=32))
    big = shapes.render(scene, 64)
    assert big.shape == (64, 64, 3)
    small = np.asarray(Image.fromarray(big).resize((32, 32), Image.BOX)).astype(int)
    assert np.abs(small - shapes.render(scene).astype(int)).mean() < 4


def test_scene_ground_truth_is_json():
    scene = shapes.sample_scene(9, ALL)
    d = json.loads(json.dumps(scene.to_dict()))
    assert d["text"] == scene.caption and len(d["objects"]) == len(scene.objects)
    for o, od in zip(scene.objects, d["objects"]):
        assert (od["shape"], od["color"], od["size"], od["position"]) == (
            o.shape, o.color, o.size, o.position,
        )  # fmt: skip
        assert od["box"] == list(o.box)
