"""The prompt score (our GenEval) of a text-to-image shapes model, per claim type.

Two prompt families drawn from fresh scenes (seeds the training set never used): single-object
prompts claiming shape, color and position ("a red circle in the top left"), and two-object
relation prompts ("a red circle to the left of a blue square"). Each prompt is generated once
per guidance scale and read back by the analytic detector (`hwaksan.eval.shapes_score`).

    python benchmarks/prompt_score.py --model shapes_t2i [--n 200] [--scales 1,2,4,6,8]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT_SEED = 777_001  # scenes the training stream (seed 0) never draws
CLAIMS = ("shape", "color", "object", "count", "position", "relation", "all")


def _phrase(o) -> str:
    from hwaksan.data.shapes.captions import SHAPE_WORDS

    return f"a {o.color} {SHAPE_WORDS[o.shape][0]}"


def _where(o) -> str:
    from hwaksan.data.shapes.captions import POSITION_WORDS

    phrases, prepositions = POSITION_WORDS[o.position]
    return f"{prepositions[0]} {phrases[0]}"


def single_prompts(n: int, resolution: int = 32, seed: int = PROMPT_SEED) -> list[str]:
    """ "a red circle in the top left": shape, color and position of one object."""
    from hwaksan.data.shapes import ShapesConfig, sample_scene
    from hwaksan.data.shapes.renderer import scene_rng

    config = ShapesConfig(resolution=resolution, min_objects=1, max_objects=1)
    objects = [sample_scene(scene_rng(seed, i), config).objects[0] for i in range(n)]
    return [f"{_phrase(o)} {_where(o)}" for o in objects]


def relation_prompts(n: int, resolution: int = 32, seed: int = PROMPT_SEED) -> list[str]:
    """ "a red circle to the left of a blue square": two objects and their relation."""
    from hwaksan.data.shapes import ShapesConfig, sample_scene
    from hwaksan.data.shapes.captions import RELATION_WORDS
    from hwaksan.data.shapes.renderer import scene_rng

    config = ShapesConfig(resolution=resolution, min_objects=2, max_objects=2)
    prompts = []
    for i in range(n):
        scene = sample_scene(scene_rng(seed + 1, i), config)
        relation = RELATION_WORDS[scene.relation(0, 1)][0]
        prompts.append(f"{_phrase(scene.objects[0])} {relation} {_phrase(scene.objects[1])}")
    return prompts


FAMILIES = {"single": single_prompts, "relation": relation_prompts}
