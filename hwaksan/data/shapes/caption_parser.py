"""Read a caption back into claims: objects (shape, color, size, position), count, relations.

Understands every phrasing `captions.py` writes and plain user prompts in the same words
("two red circles", "a big blue star in the upper left", "a heart above a cross").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hwaksan.data.shapes.captions import (
    NUMBER_WORDS,
    PLURAL,
    POSITION_WORDS,
    RELATION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
)
from hwaksan.data.shapes.scene import Scene
from hwaksan.data.shapes.world import COLORS, relation_word


@dataclass(frozen=True)
class Mention:
    """One object a prompt claims; None where the prompt says nothing of that attribute."""

    shape: str | None = None
    color: str | None = None
    size: str | None = None
    position: str | None = None


@dataclass
class Prompt:
    """The claims of a prompt: its objects, how many objects in all, and pairwise relations."""

    objects: list[Mention]
    count: int  # objects in the whole image (a prompt describes the whole scene)
    relations: list[tuple[int, str, int]] = field(default_factory=list)  # (i, "left of", j)


def _alternation(words) -> str:
    """A regex alternation, longest first so "top left" wins over "top"."""
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_SHAPE = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_SHAPE.update({PLURAL.get(w, w + "s"): s for w, s in list(_SHAPE.items())})
_SIZE = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_POSITION = {w: p for p, (ws, _) in POSITION_WORDS.items() for w in ws}
_RELATION = {w: r for r, ws in RELATION_WORDS.items() for w in ws}
_RELATION.update(
    {"on the left of": "left of", "on the right of": "right of", "underneath": "below"}
)
_NUMBER = {w: i for i, w in enumerate(NUMBER_WORDS)} | {str(i): i for i in range(6)}
_NUMBER.update({"a": 1, "an": 1, "the": 1})

_MENTION = re.compile(
    rf"\b(?:(?P<number>{_alternation(_NUMBER)})\s+)?"
    rf"(?:(?P<size>{_alternation(_SIZE)})\s+)?"
    rf"(?:(?P<color>{_alternation(COLORS)})\s+)?"
    rf"(?:(?P<size2>{_alternation(_SIZE)})\s+)?"
    rf"(?P<shape>{_alternation(_SHAPE)})\b"
)
_POSITION_RE = re.compile(
    rf"\b(?:in|at|on) the (?P<pos>{_alternation(_POSITION)})(?: corner| side| edge)?\b"
)
_RELATION_RE = re.compile(rf"\b(?P<rel>{_alternation(_RELATION)})\b")
_COUNT_RE = re.compile(rf"\b(?P<n>{_alternation(_NUMBER)}) (?:shapes|objects|things)\b")
_PREFIX_RE = re.compile(r"^(?:an? )?(?:picture|image|photo|drawing|render) of ")


def parse_caption(text: str) -> Prompt:
    """The claims a caption makes (see the module docstring for the grammar it reads)."""
    text = re.sub(r"\s+", " ", text.lower().replace("-", " ")).strip(" .")
    text = _PREFIX_RE.sub("", text)
    total = _COUNT_RE.search(text)
    if total:
        text = text[: total.start()] + text[total.end() :]
    found = list(_MENTION.finditer(text))
    gaps = [text[a.end() : b.start()] for a, b in zip(found, found[1:])]
    gaps.append(text[found[-1].end() :] if found else "")
    objects, relations = [], []
    first_position = _POSITION_RE.search(text[: found[0].start()]) if found else None
    for i, (m, gap) in enumerate(zip(found, gaps)):
        n = _NUMBER[m["number"]] if m["number"] else 1
        rel = _RELATION_RE.search(gap) if i + 1 < len(found) else None
        if rel:
            relations.append((len(objects), _RELATION[rel["rel"]], len(objects) + n))
            gap = gap[: rel.start()]
        pos = _POSITION_RE.search(gap) or (first_position if i == 0 else None)
        mention = Mention(
            shape=_SHAPE[m["shape"]],
            color=m["color"],
            size=_SIZE.get(m["size"] or m["size2"] or ""),
            position=_POSITION[pos["pos"]] if pos and n == 1 else None,
        )
        objects += [mention] * n
    count = _NUMBER[total["n"]] if total else len(objects)
    return Prompt(objects, count, relations)


def mention_phrases(text: str) -> list[tuple[str, str | None, str]]:
    """Each object mention of a caption as written, with its color (or None) and shape:
    "two small red circles above a disk" -> [("small red circles", "red", "circle"),
    ("disk", None, "circle")]. The phrase drops counts and articles (the words that name it)."""
    text = re.sub(r"\s+", " ", text.lower().replace("-", " ")).strip(" .")
    out = []
    for m in _MENTION.finditer(text):
        start = min(m.start(g) for g in ("size", "color", "size2", "shape") if m[g] is not None)
        out.append((text[start : m.end()], m["color"], _SHAPE[m["shape"]]))
    return out


def scene_prompt(scene: Scene, unambiguous: float = 0.08) -> Prompt:
    """Every claim true of a scene: each object's attributes, the count, and the relation of each
    pair whose centroids are not near a diagonal (| |dx| - |dy| | >= unambiguous * resolution)."""
    objects = [Mention(o.shape, o.color, o.size, o.position) for o in scene.objects]
    relations = []
    for i, a in enumerate(scene.objects):
        for j in range(i + 1, len(scene.objects)):
            dx, dy = (abs(u - v) for u, v in zip(a.centroid, scene.objects[j].centroid))
            if abs(dx - dy) >= unambiguous * scene.resolution:
                relations.append((i, relation_word(a.centroid, scene.objects[j].centroid), j))
    return Prompt(objects, len(objects), relations)
