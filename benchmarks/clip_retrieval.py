"""Zero-shot caption retrieval of a mini-CLIP, per attribute, on fresh shapes-world scenes: what
the README quotes. Each scene's true caption competes with captions that differ in exactly one
attribute (shape 3-way, color 7-way, size 2-way, position 9-way; relation 4-way on two objects).

    python benchmarks/clip_retrieval.py [--model mini_clip|FOLDER ...] [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from report import write_report

from hwaksan.eval.retrieval import ATTRIBUTES, retrieval_accuracy
from hwaksan.nets.text import load_mini_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["mini_clip"], help="names or folders")
    parser.add_argument("--n", type=int, default=1000, help="fresh scenes per attribute")
    parser.add_argument("--name", default="clip_retrieval", help="results/<name>.md and .json")
    args = parser.parse_args()
    rows = []
    for model_name in args.model:
        start = time.perf_counter()
        model = load_mini_clip(model_name)
        scores = retrieval_accuracy(model, n=args.n, resolution=model.config.vision.resolution)
        info = json.loads((_folder(model_name) / "config.json").read_text()).get("info", {})
        rows.append({
            "model": model_name, "scores": scores, "steps": info.get("steps"),
            "hard_negatives": info.get("hard_negatives"), "seconds": time.perf_counter() - start,
            "params": sum(p.numel() for p in model.parameters()),
        })  # fmt: skip
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    lines = [
        f"# Zero-shot caption retrieval, {args.n} fresh scenes per attribute ({when}; {machine})",
        "",
        "| model | steps | hard negatives | " + " | ".join(ATTRIBUTES) + " |",
        "|---|---|---|" + "---|" * len(ATTRIBUTES),
    ]
    for row in rows:
        cells = [f"{row['scores'][a]['accuracy']:.1%}" for a in ATTRIBUTES]
        lines.append(f"| {row['model']} | {row['steps']} | {row['hard_negatives']} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    chance = [f"{rows[0]['scores'][a]['chance']:.1%}" for a in ATTRIBUTES]
    lines.append("| chance | | | " + " | ".join(chance) + " |")
    write_report(args.name, lines, {"date": when, "machine": machine, "rows": rows})


def _folder(name: str) -> Path:
    from hwaksan.registry import WEIGHTS_DIR

    return WEIGHTS_DIR / "mini_clip" if name == "mini_clip" else Path(name)


if __name__ == "__main__":
    main()
