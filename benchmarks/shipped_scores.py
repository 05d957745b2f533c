"""Scores of a shipped model (or any model folder): what the README quotes.

digits: DDIM-50 samples, 50 per class, read by the shipped digit classifier (class accuracy),
without and with classifier-free guidance. shapes: validity and coverage of DDIM-50 samples.

    python benchmarks/shipped_scores.py digits [--n 500] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import hwaksan as hk


def digits_scores(pipe, n: int) -> dict:
    from hwaksan.eval.digits_score import digits_accuracy

    labels = [i % 10 for i in range(n)]
    scores = {}
    for guidance in (None, 2.0):
        images = pipe.generate(n, sampler="ddim", steps=50, seed=0, class_labels=labels,
                               guidance_scale=guidance, output_type="pt")  # fmt: skip
        scores[f"class_accuracy_guidance_{guidance or 1.0}"] = digits_accuracy(images, labels)
    return scores


def shapes_scores(pipe, n: int) -> dict:
    from hwaksan.data import shapes
    from hwaksan.eval.shapes_score import validity_coverage

    config = shapes.ShapesConfig(**pipe.data["shapes_config"])
    scores = {}
    for sampler, steps in (("ddim", 50), ("dpmpp_2m", 20)):
        images = pipe.generate(n, sampler=sampler, steps=steps, seed=0, output_type="pt")
        result = validity_coverage(images, config)
        scores[f"{sampler}-{steps}"] = {k: result[k] for k in ("validity", "coverage", "n")}
    return scores


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=["digits", "shapes"])
    p.add_argument("--model", default=None, help="a model folder (default: the shipped one)")
    p.add_argument("--n", type=int, default=500)
    args = p.parse_args()
    start = time.perf_counter()
    pipe = hk.load(args.model or args.name)
    scores = digits_scores(pipe, args.n) if args.name == "digits" else shapes_scores(pipe, args.n)
    report = dict(model=args.model or args.name, n=args.n, scores=scores,
                  trained_steps=pipe.data.get("steps"), seconds=round(time.perf_counter() - start),
                  machine=f"{platform.machine()}, torch {torch.__version__}",
                  date=datetime.now(timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
    print(json.dumps(report, indent=2))
    out = Path(__file__).parent / "results" / f"shipped_{args.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
