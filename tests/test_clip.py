"""The contrastive loss against a hand computation, the learned temperature, hard negatives
that change exactly one thing, and `hwaksan train-clip` end to end at toy size."""

import json
import math
import random

import pytest
import torch
from click.testing import CliRunner

from hwaksan.cli import main
from hwaksan.data.shapes import (
    ShapesConfig,
    parse_caption,
    render_batch,
    sample_scene,
    shapes_vocabulary,
)
from hwaksan.nets.text import MiniCLIP, MiniCLIPConfig, MiniCLIPTextConfig, load_mini_clip
from hwaksan.train.clip import CLIPRecipe, contrastive_loss
from hwaksan.train.clip_data import CaptionedScenes, caption_pair, perturb

PAIRS = ShapesConfig(min_objects=1, max_objects=2)


def test_contrastive_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(3, 5) * 3  # 3 images; 3 captions + 2 extra negative captions
    rows = [
        -logits[i, i] + math.log(sum(math.exp(logits[i, j]) for j in range(5))) for i in range(3)
    ]
    cols = [
        -logits[j, j] + math.log(sum(math.exp(logits[i, j]) for i in range(3))) for j in range(3)
    ]
    expected = (sum(rows) / 3 + sum(cols) / 3) / 2
    assert float(contrastive_loss(logits)) == pytest.approx(float(expected), rel=1e-6)


def test_the_loss_is_log_batch_size_for_a_blind_model_and_near_zero_for_a_perfect_one():
    assert float(contrastive_loss(torch.zeros(8, 8))) == pytest.approx(math.log(8), rel=1e-6)
    assert float(contrastive_loss(100 * torch.eye(8))) < 1e-6


def small_clip() -> MiniCLIP:
    torch.manual_seed(0)
    return MiniCLIP(
        MiniCLIPConfig(text=MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=32, layers=1))
    )


def test_recipe_loss_is_the_symmetric_loss_with_a_learned_temperature():
    model = small_clip()
    images, scenes = render_batch(6, seed=3, config=PAIRS)
    batch = {"image": images, "caption": [s.caption for s in scenes],
             "negative_caption": [caption_pair(s.objects, PAIRS, random.Random(k))[1]
                                  for k, s in enumerate(scenes)]}  # fmt: skip
    loss, logs = CLIPRecipe(model).loss(model, batch, 0)
    image = model.image_embeds(images)
    text = model.text_embeds(batch["caption"] + batch["negative_caption"])
    expected = contrastive_loss(math.exp(model.config.logit_scale_init) * image @ text.T)
    torch.testing.assert_close(loss, expected)
    assert logs["temperature"] == pytest.approx(0.07, rel=1e-5)
    loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad != 0


def _attributes(objects) -> list[tuple]:
    return [(o.shape, o.color, o.size, o.position) for o in objects]


def test_a_perturbation_changes_exactly_one_thing():
    rng = random.Random(0)
    for seed in range(200):
        objects = sample_scene(seed, PAIRS).objects
        changed = perturb(objects, PAIRS, rng)
        before, after = _attributes(objects), _attributes(changed)
        if [o.centroid for o in changed] == [o.centroid for o in reversed(objects)]:
            continue  # the relation swap: the two objects traded places
        diffs = [(k, a != b) for o, p in zip(before, after) for k, (a, b) in enumerate(zip(o, p))]
        assert sum(d for _, d in diffs) == 1, (before, after)


def test_hard_negative_captions_claim_something_else():
    rng = random.Random(1)
    for seed in range(200):
        objects = sample_scene(seed, PAIRS).objects
        positive, negative = caption_pair(objects, PAIRS, rng)
        assert positive != negative
        assert parse_caption(positive) != parse_caption(negative), (positive, negative)


def test_captioned_scenes_keep_the_rendered_pixels_exactly():
    data = CaptionedScenes(PAIRS, 40, seed=5, progress=False)
    images, scenes = render_batch(40, seed=5, config=PAIRS)
    random.seed(0)
    item = data[7]
    assert torch.equal(item["image"], images[7])
    assert parse_caption(item["caption"]).count == len(scenes[7].objects)


def test_train_clip_cli_trains_saves_and_scores(tmp_path):
    out = tmp_path / "clip"
    result = CliRunner().invoke(main, [
        "train-clip", "--steps", "3", "--scenes", "64", "--batch-size", "8", "--width", "32",
        "--layers", "1", "--eval-scenes", "8", "--out", str(out), "--warmup", "1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = json.loads((out / "model" / "retrieval.json").read_text())
    assert set(scores) == {"shape", "color", "size", "position", "relation", "order"}
    assert scores["color"]["chance"] == pytest.approx(1 / 7)
    model = load_mini_clip(out / "model")
    assert model.text_model.hidden_size == 32
    assert json.loads((out / "model" / "config.json").read_text())["info"]["steps"] == 3
