"""Why two-object relation prompts fail: each generated image sorted into one failure type, and how
much the text encoder's per-token states change when only the relation word changes.

The prompts are the prompt score's relation family ("a red circle to the left of a blue square").
Each image is read by the detector and put in one bin: two objects with the right shape-color
pairs and the relation right / wrong; the right shapes with the colors swapped between them; the
right shapes with a wrong color; a wrong shape; not two objects.

    python benchmarks/relation_failures.py --model shapes_t2i [--n 200] [--scale 2]
"""

from __future__ import annotations

import argparse
import collections
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def failure_type(prompt: str, image: torch.Tensor) -> str:
    """The bin of one relation prompt's image (see the module docstring)."""
    from hwaksan.data.shapes import detect, parse_caption
    from hwaksan.data.shapes.captions import INVERSE
    from hwaksan.data.shapes.world import relation_word

    parsed = parse_caption(prompt)
    (c1, s1), (c2, s2) = [(m.color, m.shape) for m in parsed.objects]
    relation = parsed.relations[0][1]
    found = detect(image)
    if len(found) != 2:
        return "not two objects"
    pairs = [(o.color, o.shape) for o in found]
    if sorted(pairs) == sorted([(c1, s1), (c2, s2)]):
        a = found[pairs.index((c1, s1))]
        b = found[1 - pairs.index((c1, s1))]
        held = relation_word(a.centroid, b.centroid)
        if held == relation:
            return "bound right, relation right"
        return "bound right, relation flipped" if held == INVERSE[relation] else (
            "bound right, relation on the other axis")  # fmt: skip
    if sorted(pairs) == sorted([(c2, s1), (c1, s2)]):
        return "colors swapped between the shapes"
    if sorted(o.shape for o in found) == sorted([s1, s2]):
        return "shapes right, a color wrong"
    return "a shape wrong"


@torch.no_grad()
def relation_token_cosine(text_encoder, prompts: list[str]) -> float:
    """Mean cosine, at the relation word, of the per-token states of each prompt and the same
    prompt with the opposite relation ("left of" <-> "right of", "above" <-> "below")."""
    from hwaksan.data.shapes import parse_caption
    from hwaksan.data.shapes.captions import INVERSE

    sims = []
    for prompt in prompts:
        relation = parse_caption(prompt).relations[0][1]
        word, other = relation.split()[0], INVERSE[relation].split()[0]
        flipped = prompt.replace(f" {word} ", f" {other} ", 1)
        out = text_encoder([prompt, flipped])
        h, mask = out.hidden_states, out.attention_mask
        n = int(mask[0].sum())
        if int(mask[1].sum()) != n:  # "above"/"below" split into different token counts
            continue
        cos = torch.nn.functional.cosine_similarity(h[0, :n], h[1, :n], dim=-1)  # (n,)
        sims.append(cos.min().item())  # the relation word is where they differ most
    return sum(sims) / max(len(sims), 1)


def main() -> None:
    from prompt_score import generate, relation_prompts
    from report import write_report

    from hwaksan.model_folder import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="a model folder or shipped name (repeat)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--scale", type=float, default=2.0, help="guidance scale")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--layout-scale", type=float, default=0.0, help="layout guidance (0 = off)")
    ap.add_argument("--name", default="relation_failures")
    args = ap.parse_args()
    start, rows = time.perf_counter(), []
    bins = ["bound right, relation right", "bound right, relation flipped",
            "bound right, relation on the other axis", "colors swapped between the shapes",
            "shapes right, a color wrong", "a shape wrong", "not two objects"]  # fmt: skip
    for model in args.model or ["shapes_t2i"]:
        pipe = load(model, device="cpu")
        prompts = relation_prompts(args.n, pipe.image_shape[-1])
        images = generate(pipe, prompts, args.scale, args.steps, True, args.layout_scale)
        counts = collections.Counter(failure_type(p, x) for p, x in zip(prompts, images))
        rows.append(dict(model=str(model), n=len(prompts), scale=args.scale,
                         layout_scale=args.layout_scale,
                         relation_token_cosine=relation_token_cosine(pipe.text_encoder, prompts),
                         **{b: counts[b] / len(prompts) for b in bins}))  # fmt: skip
    lines = [
        f"# Relation prompts: where they fail ({args.n} prompts, guidance {args.scale:g}, "
        f"DDIM-{args.steps}, bf16 autocast"
        + (f", layout guidance {args.layout_scale:g})" if args.layout_scale else ")"),
        "",
        f"{platform.machine()}, torch {torch.__version__}, "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, "
        f"{time.perf_counter() - start:.0f} s. `python benchmarks/relation_failures.py "
        + " ".join(sys.argv[1:]) + "`",
        "",
        "relation-token cosine: per-token states of a prompt and of the same prompt with the "
        "opposite relation word, at the word (1 = the encoder cannot tell them apart).",
        "",
        "| model | relation-token cosine | " + " | ".join(bins) + " |",
        "|" + "---|" * (2 + len(bins)),
        *(f"| {r['model']} | {r['relation_token_cosine']:.3f} | "
          + " | ".join(f"{100 * r[b]:.1f}%" for b in bins) + " |" for r in rows),
    ]  # fmt: skip
    write_report(args.name, lines, rows)


if __name__ == "__main__":
    main()
