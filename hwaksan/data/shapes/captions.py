"""Captions: several phrasings of a scene (templates, synonyms, optional articles, orders).

The vocabulary here is shared with `caption_parser.py`, which reads every phrasing back.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from hwaksan.data.shapes.world import relation_word

if TYPE_CHECKING:
    from hwaksan.data.shapes.scene import ShapeObject

SHAPE_WORDS = {
    "circle": ("circle", "disk"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star",),
    "heart": ("heart",),
    "cross": ("cross", "plus sign"),
}
PLURAL = {"box": "boxes", "cross": "crosses"}  # others add "s"
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
CORNER = ("in the", "at the")
POSITION_WORDS = {  # position -> (phrases, prepositions that read naturally before them)
    "top left": (("top left", "upper left", "top left corner"), CORNER),
    "top": (("top", "top middle"), ("at the",)),
    "top right": (("top right", "upper right", "top right corner"), CORNER),
    "left": (("left", "left side"), ("on the",)),
    "center": (("center", "middle"), ("in the", "at the")),
    "right": (("right", "right side"), ("on the",)),
    "bottom left": (("bottom left", "lower left", "bottom left corner"), CORNER),
    "bottom": (("bottom", "bottom middle"), ("at the",)),
    "bottom right": (("bottom right", "lower right", "bottom right corner"), CORNER),
}
RELATION_WORDS = {
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
COUNT_NOUNS = ("shapes", "objects")
PREFIXES = ("", "a picture of ", "an image of ")


def pick(rng: np.random.Generator, options: tuple):
    """One of `options`, uniformly (a cheaper draw than rng.integers for scalars)."""
    return options[int(rng.random() * len(options))]


def _with_article(rng: np.random.Generator, phrase: str) -> str:
    """Optional article: "a"/"an", "one", or none."""
    article = pick(rng, ("a", "a", "one", ""))
    if article == "a" and phrase[0] in "aeiou":
        article = "an"
    return f"{article} {phrase}".strip()


def _object(rng: np.random.Generator, o: ShapeObject, size: bool) -> str:
    words = [o.color, pick(rng, SHAPE_WORDS[o.shape])]
    if size:
        words.insert(0, pick(rng, SIZE_WORDS[o.size]))
    return _with_article(rng, " ".join(words))


def _position(rng: np.random.Generator, o: ShapeObject) -> str:
    phrases, prepositions = POSITION_WORDS[o.position]
    return f"{pick(rng, prepositions)} {pick(rng, phrases)}"


def position_phrase(position: str) -> str:
    """A caption that names only a position ("in the top left"): its first phrasing."""
    phrases, prepositions = POSITION_WORDS[position]
    return f"{prepositions[0]} {phrases[0]}"


def _relation(rng: np.random.Generator, a: ShapeObject, b: ShapeObject) -> str:
    return pick(rng, RELATION_WORDS[relation_word(a.centroid, b.centroid)])


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _grouped(rng: np.random.Generator, objects: tuple[ShapeObject, ...]) -> list[str]:
    """Object phrases with identical (shape, color) merged: "two red circles"."""
    groups: dict[tuple[str, str], int] = {}
    for o in objects:
        groups[(o.shape, o.color)] = groups.get((o.shape, o.color), 0) + 1
    parts = []
    for (shape, color), n in groups.items():
        word = pick(rng, SHAPE_WORDS[shape])
        if n == 1:
            parts.append(_with_article(rng, f"{color} {word}"))
        else:
            parts.append(f"{NUMBER_WORDS[n]} {color} {PLURAL.get(word, word + 's')}")
    return parts


def _single(rng: np.random.Generator, o: ShapeObject) -> list[str]:
    return [
        _object(rng, o, size=True),
        f"{_object(rng, o, size=rng.random() < 0.5)} {_position(rng, o)}",
        f"{_position(rng, o)}, {_object(rng, o, size=True)}",
        f"{pick(rng, PREFIXES[1:])}{_object(rng, o, size=rng.random() < 0.5)}",
    ]


def _pair(rng: np.random.Generator, a: ShapeObject, b: ShapeObject) -> list[str]:
    size = rng.random() < 0.5
    a_rel_b = f"{_object(rng, a, size)} {_relation(rng, a, b)} {_object(rng, b, size)}"
    b_rel_a = f"{_object(rng, b, not size)} {_relation(rng, b, a)} {_object(rng, a, not size)}"
    placed = [f"{_object(rng, o, size)} {_position(rng, o)}" for o in (a, b)]
    counted = f"two {pick(rng, COUNT_NOUNS)}: {_join(_grouped(rng, (a, b)))}"
    prefixed = pick(rng, PREFIXES[1:]) + a_rel_b
    return [a_rel_b, b_rel_a, _join(placed), counted, prefixed]


def _clarity(a: ShapeObject, b: ShapeObject) -> float:
    """How far a pair is from a diagonal, where "left of" and "above" blur: | |dx| - |dy| |."""
    return abs(abs(a.centroid[0] - b.centroid[0]) - abs(a.centroid[1] - b.centroid[1]))


def _triple(rng: np.random.Generator, objects: tuple[ShapeObject, ...]) -> list[str]:
    order = [objects[i] for i in rng.permutation(3)]
    size = rng.random() < 0.5
    placed = [f"{_object(rng, o, size)} {_position(rng, o)}" for o in order]
    k = max(range(3), key=lambda k: _clarity(order[k], order[(k + 1) % 3]))  # the clearest pair
    a, b, c = order[k], order[(k + 1) % 3], placed[(k + 2) % 3]
    return [
        _join(_grouped(rng, tuple(order))),
        _join(placed),
        f"three {pick(rng, COUNT_NOUNS)}: {_join(placed)}",
        f"{_object(rng, a, size)} {_relation(rng, a, b)} {_object(rng, b, size)} and {c}",
    ]


def phrasings(objects: tuple[ShapeObject, ...], rng: np.random.Generator) -> tuple[str, ...]:
    """Every phrasing drawn for these objects (each template once, synonyms from the rng)."""
    if len(objects) == 1:
        return tuple(_single(rng, objects[0]))
    if len(objects) == 2:
        return tuple(_pair(rng, *objects))
    return tuple(_triple(rng, objects))


_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")  # WordTokenizer's words (tests/test_text_tokenizer.py)


def shapes_vocabulary() -> list[str]:
    """Every word the shapes world's captions use, sorted: the vocabulary a mini-CLIP text
    encoder is built with for this world (split as `nets.text.WordTokenizer` splits)."""
    from hwaksan.data.shapes.world import ALL_SHAPES, BACKGROUNDS, COLORS, POSITIONS, SIZES

    phrases = [*ALL_SHAPES, *COLORS, *BACKGROUNDS, *POSITIONS, *SIZES, *NUMBER_WORDS]
    phrases += [*COUNT_NOUNS, "background"]
    phrases += [*PREFIXES, *CORNER, "a", "an", "and", ",", ":"]
    for words in SHAPE_WORDS.values():
        phrases += [*words, *(PLURAL.get(w, w + "s") for w in words)]
    for table in (SIZE_WORDS, RELATION_WORDS):
        phrases += [p for options in table.values() for p in options]
    for options, prepositions in POSITION_WORDS.values():
        phrases += [*options, *prepositions]
    return sorted({w for p in phrases for w in _WORD.findall(p.lower())})
