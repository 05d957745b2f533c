"""Few-step generation: progressive distillation, consistency distillation and consistency
training beside their teacher with DDIM and DPM-Solver++ at 1, 2, 4 and 8 steps and DDIM-50.

Each row: `--n` images (seed 0, no guidance), scored by what the teacher's data allows:
- digits (class-conditional; labels 0, 1, 2, ... in turn): Frechet distance on the shipped digits
  feature net against all 1,797 real digits, class accuracy read by the shipped digit classifier,
  within-class diversity (mean pairwise feature distance inside a class).
- shapes (unconditional): Frechet distance on the shipped shapes feature net against 2,000 fresh
  scenes of the teacher's own shapes config, validity and coverage (the scene parser), diversity
  (mean pairwise feature distance over all images).
"FD / teacher-50" and "diversity / teacher-50" compare with the teacher's DDIM-50 row of the
same run; the issue's targets sit beside them. A progressive student is made for one step count:
each `--pd` folder is scored at its own. Writes results/NAME.{md,json} and
docs/NAME_fd_vs_nfe.png (NAME: distillation_<shipped teacher, else its data> unless `--name`).

    python benchmarks/distillation.py [--n 1000] [--teacher digits] [--cd digits_cd] \
        [--ct digits_ct] [--pd digits_pd1 --pd digits_pd ...]
    python benchmarks/distillation.py --teacher shapes32   # its shipped students by default
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from guidance_sweep import real_reference, within_class_diversity
from report import write_report

import hwaksan as hk
from hwaksan.eval.feature_extractors import extract_features
from hwaksan.eval.frechet import frechet_distance_from_features
from hwaksan.registry import SHIPPED, WEIGHTS_DIR

STEPS = (1, 2, 4, 8)
DOCS = Path(__file__).resolve().parent.parent / "docs"
# method -> (steps, FD at most this many times the teacher's DDIM-50) from issue 16
TARGETS = {"progressive": (4, 1.10), "consistency": (1, 1.50), "consistency-2": (2, 1.25),
           "consistency-training": (2, 1.50)}  # fmt: skip


class Data:
    """What a teacher's images are scored against: its data's real images, feature net, labels."""

    def __init__(self, teacher) -> None:
        self.name = teacher.data.get("name")
        if self.name not in ("digits", "shapes"):
            raise SystemExit(f"distillation.py scores digits or shapes teachers, not {self.name!r}")
        resolution = teacher.image_shape[-1]
        if self.name == "digits":
            real, _ = real_reference("digits", resolution)
        else:
            from hwaksan.data import shapes

            self.config = shapes.ShapesConfig.from_dict(teacher.data["shapes_config"])
            real = shapes.render_batch(2000, seed=99, config=self.config)[0]
        self.num_classes = teacher.num_classes
        self.real_features = extract_features(real, self.name)
        # the quality columns: header -> (row key, cell format)
        if self.name == "digits":
            self.columns = {"class accuracy": ("accuracy", "{:.1%}")}
        else:
            self.columns = {"validity": ("validity", "{:.1%}"),
                            "coverage (TV)": ("coverage", "{:.3f}")}  # fmt: skip

    def labels(self, n: int) -> torch.Tensor | None:
        return None if self.num_classes is None else torch.arange(n) % self.num_classes

    def quality(self, images: torch.Tensor, labels) -> dict:
        """digits: class accuracy; shapes: validity and coverage (TV, lower is better)."""
        if self.name == "digits":
            from hwaksan.eval.digits_score import digits_accuracy

            return {"accuracy": digits_accuracy(images, labels)}
        from hwaksan.eval.shapes_score import validity_coverage

        found = validity_coverage(images, self.config)
        return {"validity": found["validity"], "coverage": found["coverage"]}


def score(pipe, method: str, sampler: str, steps: int, n: int, data: Data) -> dict:
    """One row: n images of `pipe` with `sampler` in `steps` steps, scored."""
    labels = data.labels(n)
    start = time.perf_counter()
    images = pipe.generate(n, sampler=sampler, steps=steps, seed=0, class_labels=labels,
                           output_type="pt", progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    features = extract_features(images, data.name)
    row = dict(method=method, sampler=sampler, steps=steps, nfe=steps * (2 if sampler == "heun"
               else 1), n=n, frechet=frechet_distance_from_features(features, data.real_features),
               **data.quality(images, labels),
               diversity=within_class_diversity(features, torch.zeros(n) if labels is None
                                                else labels),
               images_per_s=n / seconds)  # fmt: skip
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return row


def rows_for(args, teacher, data: Data) -> list[dict]:
    rows = [score(teacher, "teacher", "ddim", 50, args.n, data)]
    for steps in STEPS if args.teacher_rows == "all" else ():
        rows.append(score(teacher, "teacher", "ddim", steps, args.n, data))
        rows.append(score(teacher, "teacher", "dpmpp_2m", steps, args.n, data))
    for method, name in (("consistency", args.cd), ("consistency-training", args.ct)):
        if name:
            pipe = hk.load(name)
            rows += [score(pipe, method, pipe.sampler, s, args.n, data) for s in STEPS]
    for name in args.pd:
        pipe = hk.load(name)
        rows.append(score(pipe, "progressive", pipe.sampler, pipe.steps, args.n, data))
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    """Each target of the issue against the teacher's DDIM-50 FD of this run: met or by how much
    missed."""
    base = next(r for r in rows if r["method"] == "teacher" and r["steps"] == 50)
    lines = []
    for key, (steps, limit) in TARGETS.items():
        method = key.removesuffix("-2")
        found = [r for r in rows if r["method"] == method and r["steps"] == steps]
        if not found:
            lines.append(f"- {method} at {steps} step(s): not measured in this run")
            continue
        ratio = found[0]["frechet"] / base["frechet"]
        verdict = "met" if ratio <= limit else f"missed ({ratio / limit:.2f}x the target's ratio)"
        lines.append(f"- {method} at {steps} step(s): FD {ratio:.2f}x the teacher's DDIM-50 "
                     f"(target <= {limit:.2f}x): {verdict}")  # fmt: skip
    for r in rows:
        if r["method"] != "teacher" and r["steps"] == 1 and "accuracy" in r:
            lines.append(f"- {r['method']} at 1 step: class accuracy {100 * r['accuracy']:.1f}% "
                         f"(target >= 98%), diversity {r['diversity'] / base['diversity']:.2f}x "
                         "the teacher's (target >= 0.90x)")  # fmt: skip
    return lines


def curriculum_lines(log_csv: str) -> list[str]:
    """Consistency training's loss in each stage of its curriculum (from the run's log.csv): the
    mean over the stage's first and last quarter of logged steps. Stages are not comparable with
    each other (the weight 1 / (sigma_{n+1} - sigma_n) grows with N); within one, the loss should
    fall or hold, never run away."""
    import csv

    rows = list(csv.DictReader(open(log_csv)))
    lines = ["| levels N | steps | loss, first quarter | loss, last quarter |", "|---|---|---|---|"]
    for n in dict.fromkeys(r["num_levels"] for r in rows):
        losses = [float(r["loss"]) for r in rows if r["num_levels"] == n]
        steps = [int(r["step"]) for r in rows if r["num_levels"] == n]
        q = max(1, len(losses) // 4)
        lines.append(f"| {float(n):.0f} | {steps[0]}-{steps[-1]} | {sum(losses[:q]) / q:.3g} | "
                     f"{sum(losses[-q:]) / q:.3g} |")  # fmt: skip
    return lines


def plot(rows: list[dict], data_name: str, path: Path) -> None:
    if not any(r["steps"] <= 8 for r in rows):
        return  # only the teacher's DDIM-50: no curve
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, sampler in dict.fromkeys((r["method"], r["sampler"]) for r in rows):
        mine = sorted((r for r in rows if (r["method"], r["sampler"]) == (method, sampler)
                       and r["steps"] <= 8), key=lambda r: r["nfe"])  # fmt: skip
        ax.plot([r["nfe"] for r in mine], [r["frechet"] for r in mine], "-o",
                label=f"{method} ({sampler})")  # fmt: skip
    base = next(r for r in rows if r["method"] == "teacher" and r["steps"] == 50)
    ax.axhline(base["frechet"], color="gray", linestyle=":", label="teacher DDIM-50")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("network evaluations (NFE)")
    ax.set_ylabel(f"Frechet distance ({data_name} features)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000, help="images per row")
    p.add_argument("--teacher", default="digits")
    p.add_argument("--cd", default=None, help="consistency-distilled model ('' = none; "
                   "default <teacher>_cd where it ships)")  # fmt: skip
    p.add_argument("--ct", default=None, help="consistency-trained model ('' = none; "
                   "default <teacher>_ct where it ships)")  # fmt: skip
    p.add_argument("--pd", action="append", default=None, help="progressive students "
                   "(default <teacher>_pd1 and <teacher>_pd where they ship)")  # fmt: skip
    p.add_argument("--teacher-rows", choices=["all", "50"], default="all",
                   help="50: only the teacher's DDIM-50 baseline")  # fmt: skip
    p.add_argument("--ct-log", default=None, help="the consistency-training run's log.csv")
    p.add_argument("--name", default=None, help="default: distillation_<data>")
    args = p.parse_args()
    teacher = hk.load(args.teacher)
    data = Data(teacher)
    # a shipped teacher names its files (shapes32 and shapes share their data); a folder, its data
    label = args.teacher if args.teacher in SHIPPED else data.name
    args.name = args.name or f"distillation_{label}"

    # the defaults: the students that ship beside a shipped teacher (<teacher>_cd, _ct, _pd1, _pd)
    def shipped(suffix: str) -> str:
        name = f"{args.teacher}_{suffix}"
        return name if (WEIGHTS_DIR / name / "config.json").exists() else ""

    args.cd = shipped("cd") if args.cd is None else args.cd
    args.ct = shipped("ct") if args.ct is None else args.ct
    if args.pd is None:
        args.pd = [shipped("pd1"), shipped("pd")]
    args.pd = [m for m in args.pd if m]
    rows = rows_for(args, teacher, data)
    base = next(r for r in rows if r["method"] == "teacher" and r["steps"] == 50)
    quality = "".join(f" {header} |" for header in data.columns)
    lines = [
        f"# Few-step {data.name} ({args.teacher}; n = {args.n} a row, seed 0, no guidance)", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s): "
        f"`python benchmarks/distillation.py {' '.join(sys.argv[1:])}`", "",
        f"| method | sampler | steps | Frechet distance | FD / teacher-50 |{quality} "
        "diversity | diversity / teacher-50 | images/s |",
        "|---|---|---|---|---|" + "---|" * len(data.columns) + "---|---|---|",
    ]  # fmt: skip

    def quality_cells(r: dict) -> str:
        return " ".join(f"{fmt.format(r[key])} |" for key, fmt in data.columns.values())

    lines += [f"| {r['method']} | {r['sampler']} | {r['steps']} | {r['frechet']:.3f} | "
              f"{r['frechet'] / base['frechet']:.2f} | {quality_cells(r)} "
              f"{r['diversity']:.3f} | {r['diversity'] / base['diversity']:.2f} | "
              f"{r['images_per_s']:.0f} |" for r in rows]  # fmt: skip
    lines += ["", "Targets (issue 16):", *verdicts(rows)]
    if args.ct_log:
        lines += ["", "Consistency training's loss through its curriculum (`log.csv`):", "",
                  *curriculum_lines(args.ct_log)]  # fmt: skip
    write_report(args.name, lines, {"rows": rows, "settings": vars(args)})
    plot(rows, data.name, DOCS / f"{args.name}_fd_vs_nfe.png")


if __name__ == "__main__":
    main()
