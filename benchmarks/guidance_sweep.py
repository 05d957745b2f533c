"""The quality-diversity dial: class accuracy, diversity and Frechet distance against the scale of
classifier-free guidance (Ho & Salimans 2022) and classifier guidance (Dhariwal & Nichol 2021).

Four sweeps, each over the same scales, `--n` images a point (labels 0, 1, 2, ... in turn), DDIM
with the model's trailing spacing, seed 0:
- digits_cfg: the shipped class-conditional `digits` model, guidance_scale = s.
- digits_classifier: the same model with guidance_scale = 0, i.e. its null-class half, a true
  p(x) model (it was trained with condition dropout 0.1), steered by the shipped noise-aware
  classifier `digits_classifier_noisy`, classifier_scale = s.
- shapes_cfg: the shipped class-conditional `shapes_cond` (class: shape x color), guidance_scale s.
- shapes_classifier: the shipped unconditional `shapes` model steered by a noise-aware shapes
  classifier (`--shapes-classifier`; made by `hwaksan train-classifier --data shapes
  --resolution 16 --steps 2500 --batch-size 64 --lr 1e-3 --out runs/shapes_classifier_noisy`).
Accuracy: digits read by the eval digit classifier; shapes by the analytic detector (the image
must parse as one clean object of the requested shape and color). Diversity: mean pairwise L2
distance of eval-net features between images of the same class, averaged over classes (real
data's value beside it). Frechet distance: eval-net features against real images.

    python benchmarks/guidance_sweep.py [--n 200] [--steps 25] [--only digits_cfg,shapes_cfg]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from report import RESULTS, write_report

import hwaksan as hk
from hwaksan.eval.feature_extractors import extract_features
from hwaksan.eval.frechet import frechet_distance_from_features

SCALES = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
DOCS = Path(__file__).resolve().parent.parent / "docs"
SWEEPS = {  # name: (model, data, method, classifier)
    "digits_cfg": ("digits", "digits", "cfg", None),
    "digits_classifier": ("digits", "digits", "classifier", "DIGITS_CLASSIFIER"),
    "shapes_cfg": ("shapes_cond", "shapes", "cfg", None),
    "shapes_classifier": ("shapes", "shapes", "classifier", "SHAPES_CLASSIFIER"),
}


def shapes_accuracy(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images that parse as one clean object of the requested shape and color."""
    from hwaksan.data import shapes
    from hwaksan.eval.shapes_score import is_valid

    config = shapes.ShapesConfig(resolution=images.shape[-1], min_objects=1, max_objects=1)
    hits = 0
    for image, label in zip(images, labels.tolist()):
        p = shapes.parse(image)
        wanted = shapes.class_name(label, config)  # (shape, color)
        hits += is_valid(p, config) and (p.objects[0].shape, p.objects[0].color) == wanted
    return hits / len(images)


def within_class_diversity(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over classes of the mean pairwise L2 distance between same-class feature vectors."""
    per_class = []
    for c in labels.unique():
        f = features[labels == c]
        if len(f) > 1:
            d = torch.cdist(f, f)
            per_class.append(float(d.sum() / (len(f) * (len(f) - 1))))
    return sum(per_class) / len(per_class)


def real_reference(data: str, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(real images, their labels) the generated ones are compared with."""
    if data == "digits":
        from hwaksan.data.digits import load_digits_tensors

        return load_digits_tensors("all", resolution=resolution)
    from hwaksan.train.data import shapes_data

    real = shapes_data(resolution, length=2000, seed=99)
    return real.dataset.images, real.dataset.class_ids


def run_sweep(name: str, args) -> tuple[list[dict], dict]:
    model, data, method, classifier = SWEEPS[name]
    scales = args.scales if method == "cfg" else args.classifier_scales
    classifier = {"SHAPES_CLASSIFIER": args.shapes_classifier,
                  "DIGITS_CLASSIFIER": args.digits_classifier}.get(classifier)  # fmt: skip
    pipe = hk.load(model, classifier=classifier)
    num_classes = pipe.num_classes or pipe.classifier.config.num_classes
    n = -(-args.n // num_classes) * num_classes  # the same number of images in every class
    labels = torch.arange(n) % num_classes
    real, real_labels = real_reference(data, pipe.image_shape[-1])
    real_features = extract_features(real, data)
    reference = {"real_diversity": within_class_diversity(real_features, real_labels)}
    rows, grids = [], {}
    for scale in scales:
        start = time.perf_counter()
        guidance = dict(guidance_scale=scale)
        if method == "classifier":  # a conditional model guides its null-class half, p(x)
            guidance = dict(
                classifier_scale=scale, guidance_scale=0.0 if pipe.num_classes else None
            )
        images = pipe.generate(n, steps=args.steps, seed=0, class_labels=labels,
                               output_type="pt", **guidance)  # fmt: skip
        features = extract_features(images, data)
        if data == "digits":
            from hwaksan.eval.digits_score import digits_accuracy

            accuracy = digits_accuracy(images, labels)
        else:
            accuracy = shapes_accuracy(images, labels)
        rows.append(dict(sweep=name, method=method, model=model, scale=scale, n=n,
                         accuracy=round(accuracy, 4),
                         diversity=round(within_class_diversity(features, labels), 4),
                         frechet=round(frechet_distance_from_features(features, real_features), 3),
                         seconds=round(time.perf_counter() - start, 1)))  # fmt: skip
        print(rows[-1], flush=True)
        grids[scale] = images[: min(num_classes, 10)]
    return rows, {**reference, "grids": grids}


def plot(rows: list[dict], references: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name in dict.fromkeys(r["sweep"] for r in rows):
        mine = [r for r in rows if r["sweep"] == name]
        scales = [r["scale"] for r in mine]
        style = "-o" if mine[0]["method"] == "cfg" else "--s"
        for ax, key in zip(axes, ("accuracy", "diversity", "frechet")):
            ax.plot(scales, [r[key] for r in mine], style, label=name)
    for data, value in {
        k.split("_")[0]: v["real_diversity"] for k, v in references.items()
    }.items():
        axes[1].axhline(value, color="gray", linestyle=":", linewidth=1)
        axes[1].annotate(f"real {data}", (0, value), fontsize=7, color="gray")
    titles = ("class accuracy (higher: on target)", "within-class diversity (feature distance)",
              "Frechet distance to real (lower: closer)")  # fmt: skip
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("guidance scale (CFG: w; classifier: s)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def save_grids(grids: dict, path: Path) -> None:
    """One row per scale (the first image of each class): how guidance changes the samples."""
    from hwaksan.images import save_grid

    rows = list(grids.values())
    save_grid(torch.cat(rows), path, nrow=len(rows[0]), scale=3)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200, help="images per point")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps")
    p.add_argument("--scales", default=",".join(f"{s:g}" for s in SCALES), help="CFG scales")
    p.add_argument("--classifier-scales", default=",".join(f"{s:g}" for s in SCALES + (12, 16)))
    p.add_argument("--only", default=",".join(SWEEPS), help="comma list of " + ", ".join(SWEEPS))
    p.add_argument("--digits-classifier", default="digits_classifier_noisy")
    p.add_argument("--shapes-classifier", default="runs/shapes_classifier_noisy/model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--append", action="store_true", help="keep the other sweeps' saved rows")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.scales = [float(s) for s in args.scales.split(",")]
    args.classifier_scales = [float(s) for s in args.classifier_scales.split(",")]
    rows, references = [], {}
    if args.append:  # keep the sweeps of an earlier run that this one does not redo
        previous = json.loads((RESULTS / "guidance_sweep.json").read_text())
        redo = args.only.split(",")
        rows = [r for r in previous["rows"] if r["sweep"] not in redo]
        references = {k: v for k, v in previous["references"].items() if k not in redo}
    for name in args.only.split(","):
        sweep_rows, reference = run_sweep(name, args)
        rows += sweep_rows
        save_grids(reference.pop("grids"), DOCS / f"guidance_{name}.png")
        references[name] = reference
        report(rows, references, args)  # after every sweep: a cut-short run keeps what it did


def report(rows: list[dict], references: dict, args) -> None:
    lines = [
        f"# Guidance sweep (DDIM-{args.steps}, seed 0, n images a point, equal per class)", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"torch {torch.__version__}, {args.threads} thread(s): "
        "`python benchmarks/guidance_sweep.py " + f"--n {args.n} --steps {args.steps}`", "",
        "| sweep | scale | n | class accuracy | diversity | Frechet distance | seconds |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    lines += [f"| {r['sweep']} | {r['scale']:g} | {r['n']} | {100 * r['accuracy']:.1f}% | "
              f"{r['diversity']:.3f} | {r['frechet']:.2f} | {r['seconds']:.0f} |"
              for r in rows]  # fmt: skip
    lines += ["", "Diversity of real data (same feature net): " + ", ".join(
        f"{k} {v['real_diversity']:.3f}" for k, v in references.items())]  # fmt: skip
    write_report("guidance_sweep", lines, {"rows": rows, "references": references,
                                           "settings": vars(args)})  # fmt: skip
    plot(rows, references, DOCS / "guidance_sweep.png")


if __name__ == "__main__":
    main()
