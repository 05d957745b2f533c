"""Scores for images of the shapes world, read by the analytic detector (no downloaded model).

- `prompt_score`: the fraction of each kind of claim a prompt makes (shape, color, object =
  shape and color bound together, count, size, position, relation) that holds in its image, and
  the fraction of prompts whose every claim holds — our GenEval (Ghosh et al. 2023).
- `validity_coverage`: the fraction of images that parse cleanly into known objects, and the
  total-variation distance between the attributes of the valid ones and of the training data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import permutations

import numpy as np
import torch
from tqdm import tqdm

from hwaksan.data.shapes.caption_parser import Mention, Prompt, parse_caption, scene_prompt
from hwaksan.data.shapes.detector import DetectedObject, Parse, parse
from hwaksan.data.shapes.renderer import scene_rng
from hwaksan.data.shapes.scene import Scene, sample_scene
from hwaksan.data.shapes.world import (
    BACKGROUNDS,
    SIZES,
    ShapesConfig,
    relation_word,
)
from hwaksan.errors import HwaksanError

CLAIMS = ("shape", "color", "object", "count", "size", "position", "relation")
ATTRIBUTES = ("shape", "color", "size", "count")
JUNK = 0.002  # stray ink pixels a valid image may hold, as a fraction of its pixels
BACKGROUND_TOL = 0.1  # RGB distance (0-1 units) of a valid image's background from the config's


def _images(images) -> list:
    """A batch tensor [N, 3, H, W], a uint8 array [N, H, W, 3] or a list of single images."""
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim != 4:
        raise HwaksanError(f"expected a batch of images, got an array of shape {images.shape}.")
    return list(images)


def _fits(m: Mention, d: DetectedObject) -> bool:
    return (m.shape is None or m.shape == d.shape) and (m.color is None or m.color == d.color)


def _match(prompt: Prompt, found: list[DetectedObject]) -> list[DetectedObject | None]:
    """The assignment of mentions to distinct detections (shape and color agreeing) that binds
    the most mentions, then satisfies the most size, position and relation claims."""
    slots = list(range(len(found))) + [None] * len(prompt.objects)  # None: left unmatched
    best, best_key = [None] * len(prompt.objects), (-1, -1)
    for perm in sorted(set(permutations(slots, len(prompt.objects))), key=str):
        matched = [None if k is None else found[k] for k in perm]
        pairs = list(zip(prompt.objects, matched))
        if any(d is not None and not _fits(m, d) for m, d in pairs):
            continue
        bound = sum(d is not None for d in matched)
        extra = sum(_attribute_ok(m, d, "size") + _attribute_ok(m, d, "position") for m, d in pairs)
        key = (bound, extra + _relations_held(prompt, matched))
        if key > best_key:
            best, best_key = matched, key
    return best


def _relations_held(prompt: Prompt, matched: list[DetectedObject | None]) -> int:
    held = 0
    for i, rel, j in prompt.relations:
        a, b = matched[i], matched[j] if j < len(matched) else None
        held += a is not None and b is not None and relation_word(a.centroid, b.centroid) == rel
    return held


def _attribute_ok(m: Mention, d: DetectedObject | None, name: str) -> bool:
    return d is not None and getattr(m, name) == getattr(d, name)


def _multiset_hits(claimed: list[str | None], seen: list[str]) -> tuple[int, int]:
    claimed_count, seen_count = Counter(c for c in claimed if c), Counter(seen)
    return sum(min(n, seen_count[c]) for c, n in claimed_count.items()), sum(claimed_count.values())


def check_prompt(prompt: Prompt, found: list[DetectedObject]) -> dict[str, tuple[int, int]]:
    """(claims that hold, claims made) per claim type, for one prompt against one detection."""
    count_ok = int(len(found) == prompt.count)
    found = sorted(found, key=lambda d: -d.radius)[:6]  # the largest six keep matching cheap
    matched = _match(prompt, found)
    pairs = list(zip(prompt.objects, matched))
    out = {
        "shape": _multiset_hits([m.shape for m in prompt.objects], [d.shape for d in found]),
        "color": _multiset_hits([m.color for m in prompt.objects], [d.color for d in found]),
        "object": (sum(d is not None for d in matched), len(matched)),
        "count": (count_ok, 1),
    }
    for name in ("size", "position"):
        stated = [(m, d) for m, d in pairs if getattr(m, name) is not None]
        out[name] = (sum(_attribute_ok(m, d, name) for m, d in stated), len(stated))
    out["relation"] = (_relations_held(prompt, matched), len(prompt.relations))
    return out


def _as_prompt(p: str | Scene | Prompt) -> Prompt:
    if isinstance(p, str):
        return parse_caption(p)
    return scene_prompt(p) if isinstance(p, Scene) else p


def prompt_score(prompts: Sequence[str | Scene | Prompt], images, progress: bool = False) -> dict:
    """Per-claim-type rates and "all" (the fraction of prompts whose every claim holds).

    A prompt is a caption string (parsed, see caption_parser), a Scene (all its ground truth is
    claimed) or a parsed Prompt; images as in `detect`, one per prompt. Size, position and
    relation claims hold only for objects bound to a detection of the right shape and color.
    """
    images = _images(images)
    if len(images) != len(prompts):
        raise HwaksanError(f"got {len(prompts)} prompts for {len(images)} images.")
    held, made, all_ok = Counter(), Counter(), 0
    for p, image in tqdm(zip(prompts, images), total=len(images), disable=not progress):
        result = check_prompt(_as_prompt(p), parse(image).objects)
        for name, (h, m) in result.items():
            held[name], made[name] = held[name] + h, made[name] + m
        all_ok += all(h == m for h, m in result.values())
    scores = {"all": all_ok / max(len(images), 1)}
    scores.update(
        {name: held[name] / made[name] if made[name] else float("nan") for name in CLAIMS}
    )
    scores["n"] = len(images)
    return scores


def is_valid(p: Parse, config: ShapesConfig) -> bool:
    """An image is valid when every colored component is a known shape of the config in one of
    its colors, with no junk, the config's background and an object count within its range."""
    bg = np.array(BACKGROUNDS[config.background]) / 255.0
    return (
        p.resolution == config.resolution
        and not p.rejected
        and p.junk_pixels <= JUNK * p.resolution**2
        and float(np.linalg.norm(np.array(p.background) - bg)) <= BACKGROUND_TOL
        and config.min_objects <= len(p.objects) <= config.max_objects
        and all(o.shape in config.shapes and o.color in config.object_colors for o in p.objects)
    )


def _histograms(scenes: Iterable[list]) -> dict[str, Counter]:
    """Attribute histograms of object lists (anything with .shape .color .size)."""
    h = {name: Counter() for name in ATTRIBUTES}
    for objects in scenes:
        h["count"][len(objects)] += 1
        for o in objects:
            h["shape"][o.shape] += 1
            h["color"][o.color] += 1
            h["size"][o.size] += 1
    return h


def total_variation(p: Counter, q: Counter) -> float:
    """TV distance 1/2 sum |p - q| between two histograms (normalized here); 1 if one is empty."""
    np_, nq = sum(p.values()), sum(q.values())
    if not np_ or not nq:
        return 1.0
    return 0.5 * sum(abs(p[k] / np_ - q[k] / nq) for k in set(p) | set(q))


def reference_scenes(config: ShapesConfig, n: int = 10_000, seed: int = 12345) -> list[Scene]:
    """n ground-truth scenes of a config: the training distribution that coverage compares with."""
    return [sample_scene(scene_rng(seed, i), config) for i in range(n)]


@lru_cache(maxsize=16)
def _reference_histograms(config: ShapesConfig) -> dict[str, Counter]:
    return _histograms(s.objects for s in reference_scenes(config))


def validity_coverage(
    images, reference: ShapesConfig | Sequence[Scene], progress: bool = False
) -> dict:
    """validity: fraction of images that parse cleanly (see `is_valid`); coverage: mean over
    shape, color, size and count of the TV distance between valid images' attribute histograms
    and the reference's (0 = same distribution, 1 = disjoint; lower is better)."""
    if isinstance(reference, ShapesConfig):
        config, theirs = reference, _reference_histograms(reference)
    else:
        config, theirs = _config_of(reference), _histograms(s.objects for s in reference)
    parses = [parse(x) for x in tqdm(_images(images), disable=not progress, desc="detect")]
    if parses and parses[0].resolution != config.resolution:
        raise HwaksanError(
            f"images are {parses[0].resolution} px but the reference is {config.resolution} px."
        )
    valid = [p.objects for p in parses if is_valid(p, config)]
    ours = _histograms(valid)
    tv = {f"tv_{name}": total_variation(ours[name], theirs[name]) for name in ATTRIBUTES}
    return {
        "validity": len(valid) / max(len(parses), 1),
        "coverage": float(np.mean(list(tv.values()))),
        **tv,
        "n": len(parses),
        "n_valid": len(valid),
    }


def _config_of(scenes: Sequence[Scene]) -> ShapesConfig:
    """The narrowest config that holds every scene (for validity against reference scenes)."""
    counts = [len(s.objects) for s in scenes]
    objects = [o for s in scenes for o in s.objects]
    return ShapesConfig(
        resolution=scenes[0].resolution,
        min_objects=min(counts),
        max_objects=max(counts),
        shapes=tuple(sorted({o.shape for o in objects})),
        colors=tuple(sorted({o.color for o in objects})),
        sizes=tuple(s for s in SIZES if any(o.size == s for o in objects)),
        background=scenes[0].background,
    )
