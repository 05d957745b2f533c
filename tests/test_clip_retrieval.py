"""The retrieval score itself: candidates differ in exactly the tested attribute, the truth is
true of the scene, and a model that reads images and captions perfectly scores 100%."""

import pytest
import torch

from hwaksan.data.shapes import ShapesConfig, detect, parse_caption, sample_scene
from hwaksan.data.shapes.world import relation_word
from hwaksan.eval.retrieval import ATTRIBUTES, candidates, retrieval_accuracy

SIZES_OF = {"shape": 3, "color": 7, "size": 2, "position": 9, "relation": 4, "order": 2}


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_candidates_differ_in_one_attribute_and_the_truth_holds(attribute):
    objects = 2 if attribute in ("relation", "order") else 1
    config = ShapesConfig(min_objects=objects, max_objects=objects)
    for seed in range(30):
        scene = sample_scene(seed, config)
        captions, truth = candidates(scene, attribute)
        assert len(captions) == SIZES_OF[attribute]
        a, b = scene.objects[0], scene.objects[-1]
        if attribute == "order" and (a.shape, a.color) == (b.shape, b.color):
            continue  # the evaluation leaves such scenes out
        assert len(set(captions)) == len(captions)
        parsed = [parse_caption(c) for c in captions]
        named = [[(m.shape, m.color) for m in p.objects] for p in parsed]
        if attribute in ("relation", "order"):
            assert parsed[truth].relations == [(0, scene.relation(0, 1), 1)]
            assert named[truth] == [(a.shape, a.color), (b.shape, b.color)]
            others = [n for k, n in enumerate(named) if k != truth]
            swapped = [(b.shape, b.color), (a.shape, a.color)]
            assert all(n == (swapped if attribute == "order" else named[truth]) for n in others)
        else:
            o = scene.objects[0]
            assert parsed[truth].objects[0].__dict__ == dict(
                shape=o.shape, color=o.color, size=o.size, position=o.position
            )
            for p in parsed:  # every other attribute is the truth's
                same = [k for k, v in p.objects[0].__dict__.items() if v == getattr(o, k)]
                assert len(same) >= 3


class Oracle:
    """Embeds what the detector reads from an image and what the parser reads from a caption
    as one-hot keys: (shape, color, size, position) for one object, ordered relations for two."""

    def __init__(self) -> None:
        self.index: dict[tuple, int] = {}

    def _embed(self, key_sets: list[list[tuple]]) -> torch.Tensor:
        out = torch.zeros(len(key_sets), 4096)
        for row, keys in enumerate(key_sets):
            for key in keys:
                out[row, self.index.setdefault(key, len(self.index))] = 1
        return torch.nn.functional.normalize(out, dim=-1)

    def image_embeds(self, images):
        keys = []
        for image in images:
            found = detect(image)
            if len(found) == 1:
                o = found[0]
                keys.append([("one", o.shape, o.color, o.size, o.position)])
            else:
                keys.append([
                    ("two", a.shape, a.color, relation_word(a.centroid, b.centroid),
                     b.shape, b.color)
                    for a in found for b in found if a is not b
                ])  # fmt: skip
        return self._embed(keys)

    def text_embeds(self, prompts):
        keys = []
        for prompt in prompts:
            p = parse_caption(prompt)
            if p.relations:
                (_, rel, _), (a, b) = p.relations[0], p.objects
                keys.append([("two", a.shape, a.color, rel, b.shape, b.color)])
            else:
                o = p.objects[0]
                keys.append([("one", o.shape, o.color, o.size, o.position)])
        return self._embed(keys)


def test_a_perfect_reader_scores_100_percent_on_every_attribute():
    scores = retrieval_accuracy(Oracle(), n=24, batch_size=10)
    for attribute, s in scores.items():
        assert s["accuracy"] == 1.0, attribute
        assert s["chance"] == pytest.approx(1 / SIZES_OF[attribute]) and s["n"] == 24
