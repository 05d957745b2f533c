"""prompt_score and validity/coverage: perfect on real renders, low on mismatches, each claim
type sensitive to its own attribute, and the caption parser reading every template back."""

from dataclasses import replace

import pytest
import torch

from hwaksan.data import shapes
from hwaksan.data.shapes.caption_parser import Mention, Prompt, parse_caption
from hwaksan.errors import HwaksanError
from hwaksan.eval.shapes_score import CLAIMS, check_prompt, prompt_score, validity_coverage

ALL = shapes.ShapesConfig(shapes=shapes.ALL_SHAPES)


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_prompt_score_is_one_on_renders_of_their_own_scenes(resolution):
    cfg = shapes.ShapesConfig(resolution=resolution, shapes=shapes.ALL_SHAPES)
    x, scenes = shapes.render_batch(120, seed=21, config=cfg)
    for prompts in (scenes, [s.caption for s in scenes]):
        result = prompt_score(prompts, x)
        assert result["all"] == 1.0 and all(result[c] == 1.0 for c in CLAIMS), result


def test_prompt_score_is_low_on_mismatched_pairs():
    x, scenes = shapes.render_batch(150, seed=22, config=ALL)
    for prompts in (scenes, [s.caption for s in scenes]):
        result = prompt_score(prompts, x.roll(1, 0))
        assert result["all"] < 0.03 and result["object"] < 0.15 and result["relation"] < 0.2


def test_every_phrasing_round_trips_through_the_parser():
    _, scenes = shapes.render_batch(400, seed=23, config=ALL)
    for s in scenes:
        for caption in s.captions:
            prompt = parse_caption(caption)
            assert len(prompt.objects) == prompt.count == len(s.objects), caption
            assert all(m.shape and m.color for m in prompt.objects), caption
            result = check_prompt(prompt, list(s.objects))  # the ground truth as the detection
            assert all(held == made for held, made in result.values()), (caption, result)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a red circle", Prompt([Mention("circle", "red")], 1)),
        ("A big blue star in the upper-left corner.",
         Prompt([Mention("star", "blue", "large", "top left")], 1)),
        ("two green squares", Prompt([Mention("square", "green")] * 2, 2)),
        ("a heart to the left of a little white plus sign",
         Prompt([Mention("heart"), Mention("cross", "white", "small")], 2, [(0, "left of", 1)])),
        ("three objects: a cyan disk, two magenta boxes",
         Prompt([Mention("circle", "cyan")] + [Mention("square", "magenta")] * 2, 3)),
        ("in the middle, a tiny yellow triangle",
         Prompt([Mention("triangle", "yellow", "small", "center")], 1)),
        ("an image of two red triangles above a blue circle",
         Prompt([Mention("triangle", "red")] * 2 + [Mention("circle", "blue")], 3,
                [(0, "above", 2)])),
    ],
)  # fmt: skip
def test_user_prompts_parse(text, expected):
    assert parse_caption(text) == expected


def _one(scene, **changes):
    """The scene with its first object changed (re-rendered), and the image."""
    o = replace(scene.objects[0], **changes)
    changed = replace(scene, objects=(o, *scene.objects[1:]))
    return shapes.to_tensor(shapes.render(changed))[None]


def test_each_claim_type_sees_its_own_attribute():
    cfg = shapes.ShapesConfig(resolution=64, min_objects=1, max_objects=1, sizes=("small",))
    scene = shapes.sample_scene(3, cfg)
    o = scene.objects[0]
    other_color = next(c for c in shapes.COLORS if c != o.color)
    other_shape = next(s for s in shapes.BASE_SHAPES if s != o.shape)
    moved = (64 - o.centroid[0], 64 - o.centroid[1])  # mirrored through the center
    grown = dict(radius=o.radius * 0.205 / 0.13, size="large")
    cases = {
        "color": _one(scene, color=other_color),
        "shape": _one(scene, shape=other_shape),
        "position": _one(scene, centroid=moved),
        "size": _one(scene, **grown),
    }
    for changed, image in cases.items():
        result = prompt_score([scene], image)
        assert result["all"] == 0.0
        failed = {c for c in CLAIMS if result[c] == 0.0}
        # an unbound object (wrong shape or color) fails its size and position claims too
        unbound = {changed, "object", "size", "position"}
        expected = {"position": {"position"}, "size": {"size"}}.get(changed, unbound)
        assert failed == expected, (changed, result)


def test_relation_claims_follow_the_objects():
    cfg = shapes.ShapesConfig(min_objects=2, max_objects=2, shapes=("circle", "square"))
    _, scenes = shapes.render_batch(40, seed=24, config=cfg)
    for s in scenes:  # mirror through the center: symmetric shapes stay inside, relations flip
        if (s.objects[0].shape, s.objects[0].color) == (s.objects[1].shape, s.objects[1].color):
            continue  # twins: the mirrored pair reads as the same scene
        mirrored = [
            replace(o, centroid=(32 - o.centroid[0], 32 - o.centroid[1])) for o in s.objects
        ]
        image = shapes.to_tensor(shapes.render(replace(s, objects=tuple(mirrored))))[None]
        result = prompt_score([s], image)
        assert result["relation"] == 0.0 and result["object"] == 1.0


def test_count_claims():
    x, scenes = shapes.render_batch(60, seed=25, config=ALL)
    wrong = [f"{['one', 'two', 'three'][len(s.objects) % 3]} shapes" for s in scenes]
    assert prompt_score(wrong, x)["count"] == 0.0
    right = [f"{['one', 'two', 'three'][len(s.objects) - 1]} objects" for s in scenes]
    assert prompt_score(right, x)["count"] == 1.0


def test_validity_and_coverage_on_real_renders():
    cfg = shapes.ShapesConfig(resolution=32)
    x, _ = shapes.render_batch(400, seed=26, config=cfg)
    result = validity_coverage(x, cfg)
    assert result["validity"] == 1.0 and result["n_valid"] == 400
    # TV of a 400-sample histogram from its own distribution is sampling noise: a few percent
    assert (
        result["coverage"] < 0.05 and max(result[k] for k in result if k.startswith("tv_")) < 0.08
    )


def test_validity_is_zero_on_noise_and_coverage_sees_a_narrow_model():
    cfg = shapes.ShapesConfig(resolution=16)
    noise = torch.randn(50, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert validity_coverage(noise, cfg)["validity"] == 0.0
    circles = shapes.ShapesConfig(resolution=16, shapes=("circle",))
    x, _ = shapes.render_batch(300, seed=27, config=circles)
    result = validity_coverage(x, cfg)
    assert result["validity"] == 1.0
    assert result["tv_shape"] == pytest.approx(2 / 3, abs=0.03)  # all circles vs 1/3 circles
    assert result["tv_color"] < 0.1


def test_validity_follows_the_config():
    x, scenes = shapes.render_batch(60, seed=28, config=ALL)
    base_single = shapes.ShapesConfig(max_objects=1)
    expected = [len(s.objects) == 1 and s.objects[0].shape in shapes.BASE_SHAPES for s in scenes]
    result = validity_coverage(x, base_single)
    assert result["validity"] == pytest.approx(sum(expected) / 60)
    assert validity_coverage(x, scenes)["validity"] == 1.0  # reference scenes instead of a config
    on_white = shapes.ShapesConfig(background="white")
    assert validity_coverage(x[:10], on_white)["validity"] == 0.0


def test_wrong_resolution_and_count_are_user_errors():
    x, scenes = shapes.render_batch(4, seed=0, config=shapes.ShapesConfig(resolution=16))
    with pytest.raises(HwaksanError, match="px"):
        validity_coverage(x, shapes.ShapesConfig(resolution=32))
    with pytest.raises(HwaksanError, match="prompts"):
        prompt_score(scenes[:3], x)
