"""Training speed of the demo's recipe (tiny U-Net, 16 px shapes, batch 64, fp32) in NCHW and in
channels-last, the layout the fused GroupNorm kernel reads: whole `run_diffusion` calls, the two
layouts alternating, so the number is what `hwaksan train --channels-last` changes for a user.

    python benchmarks/channels_last_training.py [--steps 300] [--rounds 2]
Writes benchmarks/results/channels_last_training.md and .json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def steps_per_second(channels_last: bool, steps: int) -> float:
    from hwaksan.runs.diffusion import DiffusionRun, run_diffusion
    from hwaksan.train.data import shapes_data
    from hwaksan.train.loop import TrainConfig

    data = shapes_data(16, length=20_000, seed=0)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            out_dir=out, steps=steps, batch_size=64, lr=2e-3, lr_warmup_steps=50,
            ema_decay=0.995, checkpoint_every=10**9, sample_every=0, seed=0,
            channels_last=channels_last, progress=False,
        )  # fmt: skip
        run = DiffusionRun(data="shapes", resolution=16, preset="tiny", num_samples=4, train=config)
        start = time.perf_counter()
        run_diffusion(run, data)
        return steps / (time.perf_counter() - start)


def main() -> None:
    from report import write_report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    speeds = {"NCHW": [], "channels-last": []}
    steps_per_second(True, 20)  # compile or load the kernels before anything is timed
    for r in range(args.rounds):
        order = ["NCHW", "channels-last"] if r % 2 == 0 else ["channels-last", "NCHW"]
        for layout in order:
            speeds[layout].append(steps_per_second(layout == "channels-last", args.steps))
            print(f"round {r + 1}: {layout} {speeds[layout][-1]:.2f} steps/s")
    med = {k: statistics.median(v) for k, v in speeds.items()}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# The demo's training recipe in NCHW and in channels-last (fp32, CPU)",
        "",
        f"- {now}; {os.cpu_count()} logical CPUs, torch {torch.__version__}; whole runs of "
        f"{args.steps} steps (model build, training, final sample grid, save), "
        f"{args.rounds} rounds, layouts alternating",
        "",
        "| layout | steps/s (median) | runs |",
        "|---|---|---|",
        *(f"| {k} | {med[k]:.2f} | {' '.join(f'{v:.2f}' for v in speeds[k])} |" for k in speeds),
        "",
        f"channels-last vs NCHW: {med['channels-last'] / med['NCHW']:.2f}x",
        "",
        f"Command: `python benchmarks/channels_last_training.py --steps {args.steps} "
        f"--rounds {args.rounds}`",
    ]
    write_report("channels_last_training", lines, dict(speeds=speeds, median=med, when=now))


if __name__ == "__main__":
    main()
