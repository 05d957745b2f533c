"""Captioned shapes-world scenes for contrastive training, each with a hard-negative caption.

A hard negative describes the same scene with exactly one thing changed (a shape, a color, a
size, a position, or for two objects their relation), drawn with the same random choices so the
two captions differ only there (NegCLIP, Yuksekgonul et al. 2023): in-batch negatives alone
rarely differ in one word, so a model could pass them as a bag of words.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from hwaksan.data.shapes import POSITIONS, ShapesConfig, render_batch
from hwaksan.data.shapes.captions import phrasings
from hwaksan.data.shapes.scene import ShapeObject

Objects = tuple[ShapeObject, ...]


def perturb(
    objects: Objects, config: ShapesConfig, rng: random.Random, relation_share: float = 0.2
) -> Objects:
    """The objects with one attribute of one object changed, or (two objects, with probability
    `relation_share`) their places swapped, which turns every relation around."""
    if len(objects) == 2 and rng.random() < relation_share:
        a, b = objects
        return (replace(a, centroid=b.centroid), replace(b, centroid=a.centroid))
    kind, k = rng.choice(["shape", "color", "size", "position"]), rng.randrange(len(objects))
    o, out = objects[k], list(objects)
    if kind == "position":
        cell = rng.choice([i for i, p in enumerate(POSITIONS) if p != o.position])
        third = o.resolution / 3
        out[k] = replace(o, centroid=((cell % 3 + 0.5) * third, (cell // 3 + 0.5) * third))
    else:
        options = {"shape": config.shapes, "color": config.object_colors, "size": config.sizes}
        value = rng.choice([v for v in options[kind] if v != getattr(o, kind)])
        out[k] = replace(o, **{kind: value})
    return tuple(out)


def caption_pair(
    objects: Objects, config: ShapesConfig, rng: random.Random, relation_share: float = 0.2
) -> tuple[str, str]:
    """(a fresh phrasing of the scene, the same phrasing of a perturbed scene); a perturbation the
    phrasing does not mention (a size in "two shapes: ...") is drawn again."""
    seed = rng.getrandbits(63)
    captions = phrasings(objects, np.random.default_rng(seed))
    k = rng.randrange(len(captions))
    for _ in range(16):
        changed = perturb(objects, config, rng, relation_share)
        negative = phrasings(changed, np.random.default_rng(seed))[k]
        if negative != captions[k]:
            break
    return captions[k], negative


class CaptionedScenes(Dataset):
    """`length` scenes rendered once (uint8); item i: image [3, H, W] in [-1, 1], "caption" (a
    fresh phrasing each time) and "negative_caption". Draws use python's `random`, which the
    training loop seeds and checkpoints."""

    def __init__(
        self,
        config: ShapesConfig,
        length: int,
        seed: int = 0,
        relation_share: float = 0.2,  # of two-object negatives: the objects swap places
        progress: bool = True,
    ) -> None:
        self.config, self.relation_share, chunk, parts = config, relation_share, 2048, []
        self.objects = []
        for start in tqdm(range(0, length, chunk), desc="render", disable=not progress):
            images, scenes = render_batch(min(chunk, length - start), seed, config, start)
            parts.append(images.add(1).mul(127.5).round().to(torch.uint8))  # exact: rendered uint8
            self.objects += [scene.objects for scene in scenes]
        self.images = torch.cat(parts)  # [N, 3, H, W] uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        caption, negative = caption_pair(self.objects[i], self.config, random, self.relation_share)
        image = self.images[i].float().div(127.5).sub(1)  # [3, H, W] in [-1, 1]
        return {"image": image, "caption": caption, "negative_caption": negative}
