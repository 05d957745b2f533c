"""Training throughput of two checkouts side by side: `train_throughput.py` run in each tree in
turn (A B A B ...), each run's "vs diffusers" ratio read back. The ratio to diffusers, measured in
the same process, is what survives a shared machine's drift; comparing two trees' ratios says
whether a change made training slower.

    python benchmarks/throughput_ab.py OLD_TREE NEW_TREE [--rounds 2] [--steps 5]
    python benchmarks/throughput_ab.py --tabulate A1.md,A2.md B1.md,B2.md   # runs made before

Writes benchmarks/results/throughput_ab.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from report import write_report

ROW = re.compile(  # | net | precision | s/step | img/s | vs diffusers | ...
    r"^\| (hwaksan(?: channels-last)?) \| (fp32|bf16) \| [\d.]+ \| [\d.]+ \| ([\d.]+)x"
)


def ratios(markdown: str) -> dict[str, float]:
    """{"hwaksan fp32": 1.31, ...}: each of our rows' median-step ratio to diffusers."""
    found = {}
    for line in markdown.splitlines():
        m = ROW.match(line)
        if m:
            found[f"{m.group(1)} {m.group(2)}"] = float(m.group(3))
    return found


def run(tree: Path, name: str, steps: int) -> str:
    """train_throughput.py in `tree` (its own hwaksan first on the path); its markdown."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "benchmarks/train_throughput.py", "--steps", str(steps),
           "--precisions", "fp32,bf16", "--name", name]  # fmt: skip
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
    return (tree / "benchmarks" / "results" / f"{name}.md").read_text()


def tabulate(a_runs: list[str], b_runs: list[str], labels: tuple[str, str]) -> list[str]:
    a, b = [ratios(t) for t in a_runs], [ratios(t) for t in b_runs]
    lines = [f"| net, precision | {labels[0]}: vs diffusers, each run | median | "
             f"{labels[1]}: each run | median |", "|---|---|---|---|---|"]  # fmt: skip
    for key in a[0]:
        xs, ys = [r[key] for r in a], [r[key] for r in b]
        lines.append(f"| {key} | {', '.join(f'{x:.2f}x' for x in xs)} | "
                     f"{statistics.median(xs):.2f}x | {', '.join(f'{y:.2f}x' for y in ys)} | "
                     f"{statistics.median(ys):.2f}x |")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", help="OLD_TREE NEW_TREE")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--tabulate", nargs=2, metavar=("A_FILES", "B_FILES"),
                    help="comma lists of train_throughput markdown files already made")  # fmt: skip
    args = ap.parse_args()
    if args.tabulate:
        a_runs = [Path(f).read_text() for f in args.tabulate[0].split(",")]
        b_runs = [Path(f).read_text() for f in args.tabulate[1].split(",")]
        labels = ("before", "after")
    else:
        old, new = (Path(t).resolve() for t in args.trees)
        a_runs, b_runs = [], []
        for r in range(args.rounds):
            a_runs.append(run(old, f"ab_old_{r}", args.steps))
            b_runs.append(run(new, f"ab_new_{r}", args.steps))
        labels = (old.name, new.name)
    header = [line for line in a_runs[0].splitlines() if line.startswith("- ")][:3]
    lines = ["# Training throughput, two trees side by side (ratio to diffusers per run)", "",
             *header, "", *tabulate(a_runs, b_runs, labels)]  # fmt: skip
    write_report("throughput_ab", lines, {"a": [ratios(t) for t in a_runs],
                                          "b": [ratios(t) for t in b_runs]})  # fmt: skip


if __name__ == "__main__":
    main()
