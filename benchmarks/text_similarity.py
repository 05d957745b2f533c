"""How far apart each text encoder puts captions that differ in exactly one attribute: the mean
cosine similarity of pooled embeddings, true caption vs each alternative of the retrieval test
(hwaksan.eval.retrieval.candidates). Text only; 1.0 means the encoder cannot tell them apart.

    python benchmarks/text_similarity.py [--n 200] [--encoders mini_clip minilm]
"""

from __future__ import annotations

import argparse
import platform
from datetime import datetime, timezone

import torch
import torch.nn.functional as F
from report import write_report

from hwaksan.data.shapes import ShapesConfig, sample_scene
from hwaksan.eval.retrieval import ATTRIBUTES, EVAL_SEED, candidates
from hwaksan.nets.text import build_text_encoder, load_mini_clip


def embedder(name: str):
    """prompts -> unit-norm pooled embeddings (mini-CLIP: its joint-space text embedding)."""
    if name == "mini_clip":
        return load_mini_clip("mini_clip").text_embeds
    encoder = build_text_encoder(name)
    return lambda prompts: F.normalize(encoder(prompts).pooled, dim=-1)


@torch.no_grad()
def similarities(embed, n: int) -> dict[str, float]:
    out = {}
    for attribute in ATTRIBUTES:
        objects = 2 if attribute in ("relation", "order") else 1
        config = ShapesConfig(min_objects=objects, max_objects=objects)
        sets = [candidates(sample_scene((EVAL_SEED, k), config), attribute) for k in range(n)]
        sets = [(c, t) for c, t in sets if len(set(c)) == len(c)]
        flat = [c for captions, _ in sets for c in captions]
        e = torch.cat([embed(flat[i : i + 256]) for i in range(0, len(flat), 256)])
        e = e.view(len(sets), -1, e.shape[-1])  # (n, K, D)
        truth = torch.tensor([t for _, t in sets])
        cos = (e @ e[torch.arange(len(sets)), truth][:, :, None]).squeeze(-1)  # (n, K)
        total, count = float(cos.sum() - cos.shape[0]), cos.numel() - cos.shape[0]  # drop self
        out[attribute] = total / count
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="scenes per attribute")
    parser.add_argument("--encoders", nargs="+", default=["mini_clip", "minilm"])
    args = parser.parse_args()
    rows = {name: similarities(embedder(name), args.n) for name in args.encoders}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, torch {torch.__version__}"
    lines = [
        f"# Mean cosine similarity of captions one attribute apart ({args.n} scenes; {when})",
        "",
        "| encoder | " + " | ".join(ATTRIBUTES) + " |",
        "|---|" + "---|" * len(ATTRIBUTES),
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[a]:.3f}" for a in ATTRIBUTES) + " |")
    write_report("text_similarity", lines, {"date": when, "machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
