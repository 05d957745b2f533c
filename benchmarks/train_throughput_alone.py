"""One net's fp32 training step timed alone in its own process (no other net's allocations in
the heap): the cross-check of `train_throughput.py`, whose interleaved runs can favour one net.

    python benchmarks/train_throughput_alone.py diffusers    # one process, one net, prints times
    python benchmarks/train_throughput_alone.py ours         # channels-last fp32
    python benchmarks/train_throughput_alone.py --rounds 3 [--allocators glibc,jemalloc,tcmalloc]

The `--rounds` form alternates the two nets, each in a fresh process, under each allocator: the
default glibc malloc, glibc with its trim and mmap thresholds raised (freed blocks stay in the
heap instead of going back to the kernel, so the next step does not page-fault them in again),
and jemalloc / tcmalloc through LD_PRELOAD (the PyTorch CPU tuning guide's advice). Both nets
always run under the same allocator. Writes benchmarks/results/train_throughput_alone.md/.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ALLOCATORS = {  # name -> environment added to the child process
    "glibc": {},
    "glibc-tuned": {"MALLOC_TRIM_THRESHOLD_": str(1 << 34), "MALLOC_MMAP_THRESHOLD_": str(1 << 34)},
    "jemalloc": {"LD_PRELOAD": "libjemalloc.so.2"},
    "tcmalloc": {"LD_PRELOAD": "libtcmalloc_minimal.so.4"},
}


def time_one(which: str, steps: int = 6) -> list[float]:
    """Seconds per step of one net (after two warm-up steps), built and timed in this process."""
    from train_throughput import Stepper, build_pair

    ours, theirs = build_pair(channels_last=which == "ours")
    step = Stepper(ours if which == "ours" else theirs, 64, False)
    step(), step()  # warm-up
    return [step() for _ in range(steps)]


def _child(which: str, allocator: str) -> list[float]:
    env = {**os.environ, **ALLOCATORS[allocator]}
    out = subprocess.run([sys.executable, __file__, which, "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def alternate(rounds: int, allocators: list[str]) -> None:
    import torch
    from report import write_report

    times = {(a, n): [] for a in allocators for n in ("ours", "diffusers")}
    for r in range(rounds):
        for a in allocators:
            for n in ("ours", "diffusers") if r % 2 == 0 else ("diffusers", "ours"):
                times[a, n] += _child(n, a)
                print(f"round {r + 1}/{rounds} {a} {n}: {[round(t, 2) for t in times[a, n][-6:]]}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Training throughput, each net alone in its own process (fp32, batch 64)",
        "",
        f"- {now}; {os.cpu_count()} logical CPUs, torch {torch.__version__}, 2 threads",
        "- ours = hwaksan U-Net channels-last; diffusers = UNet2DModel, the same config as "
        "`train_throughput.py`",
        f"- {rounds} rounds; in each, every allocator runs both nets, each in a fresh process "
        "(2 warm-up steps, then 6 timed); the order of the two nets alternates between rounds",
        "",
        "| allocator | ours s/step (median) | diffusers s/step (median) | ours vs diffusers | "
        "best ours / best diffusers | steps ours | steps diffusers |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for a in allocators:
        o, d = times[a, "ours"], times[a, "diffusers"]
        mo, md = statistics.median(o), statistics.median(d)
        ratio, best = md / mo, min(d) / min(o)
        rows.append(dict(allocator=a, ours=o, diffusers=d, ratio=ratio, best_ratio=best))
        steps = " | ".join(" ".join(f"{t:.2f}" for t in ts) for ts in (o, d))
        lines.append(f"| {a} | {mo:.2f} | {md:.2f} | **{ratio:.2f}x** | {best:.2f}x | {steps} |")
    lines += ["", f"Command: `python benchmarks/train_throughput_alone.py --rounds {rounds} "
              f"--allocators {','.join(allocators)}`"]  # fmt: skip
    write_report("train_throughput_alone", lines, rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", nargs="?", choices=("ours", "diffusers"))
    ap.add_argument("--json", action="store_true", help="print the step times as one JSON line")
    ap.add_argument("--rounds", type=int, default=0, help="alternate both nets in fresh processes")
    ap.add_argument("--allocators", default="glibc,glibc-tuned,jemalloc,tcmalloc")
    args = ap.parse_args()
    if args.rounds:
        alternate(args.rounds, args.allocators.split(","))
    else:
        which = args.net or "ours"
        times = time_one(which)
        if args.json:
            print(json.dumps(times))
        else:
            print(f"{which}: median {statistics.median(times):.2f} s/step, best {min(times):.2f}",
                  [round(t, 2) for t in times])  # fmt: skip
