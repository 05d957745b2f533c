"""Zero-shot caption retrieval per attribute: for fresh scenes, pick the right caption among
candidates that differ in exactly one attribute (CLIP's zero-shot protocol, Radford et al. 2021,
sec. 3.1.2, on shapes-world captions).

Single-object scenes test shape, color, size and position ("a small red circle in the top
left" against "a small red square in the top left", ...); two-object scenes test the relation
("a red circle to the left of a blue square" against "... right of / above / below ...") and
word order ("a blue square to the left of a red circle": the same words, so a bag-of-words
reader scores exactly chance).
"""

from __future__ import annotations

import torch

from hwaksan.data.shapes import BASE_SHAPES, POSITIONS, SIZES, ShapesConfig, render_batch
from hwaksan.data.shapes.captions import POSITION_WORDS, RELATION_WORDS
from hwaksan.data.shapes.scene import Scene
from hwaksan.data.shapes.world import COLORS, RELATIONS

ATTRIBUTES = ("shape", "color", "size", "position", "relation", "order")
EVAL_SEED = 10_007  # a stream no training run draws from (training uses small seeds)


def single_caption(shape: str, color: str, size: str, position: str) -> str:
    """ "a small red circle in the top left": the first phrase of every word in captions.py."""
    phrases, prepositions = POSITION_WORDS[position]
    return f"a {size} {color} {shape} {prepositions[0]} {phrases[0]}"


def relation_caption(scene: Scene, relation: str, swap: bool = False) -> str:
    """ "a red circle to the left of a blue square" for the scene's first two objects (swapped:
    the same relation word between the objects in the other order)."""
    a, b = scene.objects[1::-1] if swap else scene.objects[:2]
    return f"a {a.color} {a.shape} {RELATION_WORDS[relation][0]} a {b.color} {b.shape}"


def candidates(scene: Scene, attribute: str) -> tuple[list[str], int]:
    """The candidate captions for `scene` and the index of the true one."""
    if attribute == "relation":
        captions = [relation_caption(scene, r) for r in RELATIONS]
        return captions, RELATIONS.index(scene.relation(0, 1))
    if attribute == "order":
        relation = scene.relation(0, 1)
        return [relation_caption(scene, relation), relation_caption(scene, relation, True)], 0
    o = scene.objects[0]
    truth = {"shape": o.shape, "color": o.color, "size": o.size, "position": o.position}
    options = {"shape": BASE_SHAPES, "color": COLORS, "size": SIZES, "position": POSITIONS}
    captions = [single_caption(**{**truth, attribute: value}) for value in options[attribute]]
    return captions, options[attribute].index(truth[attribute])


@torch.no_grad()
def retrieval_accuracy(
    model, n: int = 500, seed: int = EVAL_SEED, resolution: int = 32, batch_size: int = 250
) -> dict[str, dict[str, float]]:
    """{attribute: {"accuracy", "chance", "n"}} over n fresh scenes per attribute. `model` has
    `image_embeds(images)` and `text_embeds(prompts)`, both unit-norm (e.g. `MiniCLIP`)."""
    results = {}
    for attribute in ATTRIBUTES:
        objects = 2 if attribute in ("relation", "order") else 1
        config = ShapesConfig(resolution=resolution, min_objects=objects, max_objects=objects)
        images, scenes = render_batch(n, seed=seed + objects, config=config)
        if attribute == "order":  # two alike objects read the same both ways round
            keep = [i for i, s in enumerate(scenes) if len(set(candidates(s, "order")[0])) == 2]
            images, scenes = images[keep], [scenes[i] for i in keep]
        correct, num_candidates = 0, 0
        for start in range(0, len(scenes), batch_size):
            part = scenes[start : start + batch_size]
            image = model.image_embeds(images[start : start + batch_size])  # (b, D)
            options = [candidates(scene, attribute) for scene in part]
            texts = model.text_embeds([c for captions, _ in options for c in captions])
            texts = texts.view(len(part), -1, texts.shape[-1])  # (b, K, D)
            scores = (texts @ image[:, :, None]).squeeze(-1)  # (b, K)
            truth = torch.tensor([index for _, index in options])
            correct += int((scores.argmax(1).cpu() == truth).sum())
            num_candidates = scores.shape[1]
        results[attribute] = {
            "accuracy": correct / len(scenes),
            "chance": 1 / num_candidates,
            "n": len(scenes),
        }
    return results
