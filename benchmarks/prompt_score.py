"""The prompt score (our GenEval) of a text-to-image shapes model, per claim type.

Two prompt families drawn from fresh scenes (seeds the training set never used): single-object
prompts claiming shape, color and position ("a red circle in the top left"), and two-object
relation prompts ("a red circle to the left of a blue square"). Each prompt is generated once
per guidance scale and read back by the analytic detector (`hwaksan.eval.shapes_score`).

    python benchmarks/prompt_score.py --model shapes_t2i [--n 200] [--scales 1,2,4,6,8]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

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


def layout_relations(prompts: list[str]) -> list[list[tuple[str, str, str]]]:
    """Each prompt's relations as (phrase A, relation, phrase B) for layout guidance, read back
    by the caption parser: "a red circle to the left of a blue square" ->
    [("red circle", "left of", "blue square")]."""
    from hwaksan.data.shapes import parse_caption
    from hwaksan.data.shapes.captions import SHAPE_WORDS

    out = []
    for prompt in prompts:
        parsed = parse_caption(prompt)
        words = [f"{m.color} {SHAPE_WORDS[m.shape][0]}" for m in parsed.objects]
        out.append([(words[i], rel, words[j]) for i, rel, j in parsed.relations])
    return out


def generate(
    pipe, prompts: list[str], scale: float, steps: int, bf16: bool = False, layout: float = 0.0
) -> torch.Tensor:
    """One image per prompt (seed 0) at guidance `scale`, [-1, 1]; `layout` > 0 adds layout
    guidance of that strength on the prompts' relations."""
    relations = layout_relations(prompts) if layout else None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return pipe.generate(len(prompts), steps=steps, seed=0, prompt=prompts,
                             guidance_scale=scale, output_type="pt", relations=relations,
                             layout_scale=layout).float()  # fmt: skip


def score_model(
    pipe, prompts: list[str], scale: float, steps: int, bf16: bool = False, layout: float = 0.0
) -> tuple[dict, torch.Tensor]:
    """`generate`, then the rate of each claim the detector reads back."""
    from hwaksan.eval.shapes_score import prompt_score

    images = generate(pipe, prompts, scale, steps, bf16, layout)
    scores = prompt_score(prompts, images)
    return {k: scores[k] for k in CLAIMS}, images


def _family_grid(rows: dict[str, torch.Tensor], prompts: list[str], path: Path) -> None:
    """One row per guidance scale (the first 8 prompts), upscaled 4x."""
    from hwaksan.images import save_grid

    images = torch.cat([x[:8] for x in rows.values()])
    save_grid(images, path, nrow=8, scale=4)
    lines = [f"rows (top to bottom): guidance {', '.join(rows)}", "columns:"]
    path.with_suffix(".txt").write_text("\n".join(lines + prompts[:8]) + "\n")


def _table(results: list[dict]) -> list[str]:
    header = "| model (text encoder) | prompts | guidance | " + " | ".join(CLAIMS) + " |"
    lines = [header, "|" + "---|" * (3 + len(CLAIMS))]
    for r in results:
        cells = " | ".join("-" if r[k] != r[k] else f"{100 * r[k]:.0f}%" for k in CLAIMS)
        lines.append(
            f"| {r['model']} ({r['encoder']}) | {r['family']} | {r['scale']:g} | {cells} |"
        )
    return lines


def main() -> None:
    from hwaksan.model_folder import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="a model folder or shipped name (repeat)")
    ap.add_argument("--n", type=int, default=100, help="prompts per family")
    ap.add_argument("--scales", default="1,2,4,6,8")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (about 3x faster here)")
    ap.add_argument(
        "--layout-scale",
        type=float,
        default=0.0,
        help="layout guidance on the relation prompts' relations (0 = off)",
    )
    ap.add_argument(
        "--prompt-seed",
        type=int,
        default=PROMPT_SEED,
        help="scenes the prompts describe (another seed to tune on)",
    )
    ap.add_argument("--name", default="prompt_score", help="results/<name>.md and .json")
    ap.add_argument("--grids", default="docs", help="folder for one PNG grid per family")
    ap.add_argument("--families", default="single,relation")
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    results, start = [], time.perf_counter()
    for model in args.model or ["shapes_t2i"]:
        pipe = load(model, device="cpu")
        encoder = type(pipe.text_encoder).__name__
        resolution = pipe.image_shape[-1]
        for family in args.families.split(","):
            make = FAMILIES[family]
            prompts, rows = make(args.n, resolution, args.prompt_seed), {}
            for scale in scales:
                layout = args.layout_scale if family == "relation" else 0.0
                scores, images = score_model(pipe, prompts, scale, args.steps, args.bf16, layout)
                rows[f"{scale:g}"] = images
                results.append(dict(model=str(model), encoder=encoder, family=family,
                                    scale=scale, n=len(prompts), **scores))  # fmt: skip
                print(_table(results[-1:])[-1], flush=True)
            name = Path(str(model)).name
            _family_grid(rows, prompts, Path(args.grids) / f"{name}_{family}.png")
    lines = [
        f"# Prompt score: {args.n} prompts per family, one image each, DDIM-{args.steps}, seed 0"
        + (", bf16 autocast" if args.bf16 else "")
        + (f", layout guidance {args.layout_scale:g} on relations" if args.layout_scale else "")
        + (f", prompt seed {args.prompt_seed}" if args.prompt_seed != PROMPT_SEED else ""),
        "",
        f"{platform.machine()}, torch {torch.__version__}, "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, "
        f"{time.perf_counter() - start:.0f} s. `python benchmarks/prompt_score.py "
        + " ".join(sys.argv[1:]) + "`",
        "",
        "single: 'a red circle in the top left' (claims: shape, color, count = 1, position);",
        "relation: 'a red circle to the left of a blue square' (shape, color, count = 2, "
        "relation). 'all' = every claim of the prompt holds.",
        "",
        *_table(results),
    ]  # fmt: skip
    from report import write_report

    write_report(args.name, lines, results)


if __name__ == "__main__":
    main()
