"""Do the Frechet distance and KID behave? Real vs real (disjoint sets) against real vs
blurred and noised copies, on the shipped digits and shapes feature nets; plus the shipped
nets' held-out accuracies.

Run: python benchmarks/eval_sanity.py  (about a minute on 2 CPU cores; writes
benchmarks/results/eval_sanity.json and .png)
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from hwaksan.data import shapes
from hwaksan.data.digits import load_digits_tensors
from hwaksan.eval.degradations import add_noise, gaussian_blur
from hwaksan.eval.digits_score import digits_accuracy
from hwaksan.eval.feature_extractors import extract_features
from hwaksan.eval.frechet import frechet_distance_from_features, kid_from_features
from hwaksan.nets.features import load_feature_net

BLUR_SIGMAS = (0.5, 1.0, 1.5, 2.0)
NOISE_STDS = (0.05, 0.1, 0.2, 0.4, 0.8)
OUT = Path(__file__).parent / "results"


def real_sets(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint real sets: digits split in half (898 / 899), or 1,000 + 1,000 shapes renders."""
    if name == "digits":
        images, _ = load_digits_tensors("all", resolution=16)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        half = len(images) // 2
        return images[order[:half]], images[order[half:]]
    config = shapes.ShapesConfig(resolution=32)
    return shapes.render_batch(1000, 0, config)[0], shapes.render_batch(1000, 1, config)[0]


def scores(feature: str) -> list[dict]:
    """FD and KID of set A against set B and against each degradation of B."""
    real_a, real_b = real_sets(feature)
    f_a = extract_features(real_a, feature)
    rows = [("real", 0.0, real_b)]
    rows += [("blur", s, gaussian_blur(real_b, s)) for s in BLUR_SIGMAS]
    rows += [("noise", s, add_noise(real_b, s)) for s in NOISE_STDS]
    out = []
    for kind, level, images in rows:
        f_b = extract_features(images, feature)
        kid_mean, kid_std = kid_from_features(f_a, f_b, subset_size=500, num_subsets=100)
        fd = frechet_distance_from_features(f_a, f_b)
        out.append(dict(kind=kind, level=level, fd=fd, kid_mean=kid_mean, kid_std=kid_std))
        print(
            f"{feature:7s} {kind:6s} {level:5.2f} FD {fd:9.4f} KID {kid_mean:.5f} +- {kid_std:.5f}"
        )
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, kind, label in zip(axes, ("blur", "noise"), ("blur sigma (px)", "noise std")):
        for feature, rows in results.items():
            base = rows[0]["fd"]
            pts = [(r["level"], r["fd"]) for r in rows if r["kind"] == kind]
            ax.plot([0] + [p[0] for p in pts], [base] + [p[1] for p in pts], "o-", label=feature)
        ax.set_xlabel(label), ax.set_ylabel("Frechet distance"), ax.set_yscale("log")
        ax.legend()
    fig.suptitle("Frechet distance vs degradation (level 0: two disjoint real sets)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    torch.set_num_threads(1)
    start = time.time()
    images, labels = load_digits_tensors("heldout", resolution=16)
    accuracy = digits_accuracy(images, labels)
    print(f"digits classifier held-out accuracy: {accuracy:.4f} (300 digits)")
    shapes_heldout = load_feature_net("shapes_features").config.extra["heldout_accuracy"]
    print(f"shapes feature net held-out exact-set accuracies (from training): {shapes_heldout}")
    results = {feature: scores(feature) for feature in ("digits", "shapes")}
    record = dict(
        machine=f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        seconds=round(time.time() - start, 1),
        digits_heldout_accuracy=accuracy,
        shapes_heldout_accuracy=shapes_heldout,
        results=results,
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "eval_sanity.json").write_text(json.dumps(record, indent=2) + "\n")
    try:
        plot(results, OUT / "eval_sanity.png")
    except ImportError:
        print("matplotlib missing: no plot")
    print(f"wrote {OUT / 'eval_sanity.json'} ({record['seconds']} s)")


if __name__ == "__main__":
    main()
