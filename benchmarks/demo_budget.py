"""How good does the demo's recipe get after N training steps? (validity / coverage vs steps)

Trains the demo's model in segments (each segment resumes the last, which is exact), and after
each one samples `--n` images with DDIM-50 (EMA weights) and scores them with the shapes-world
detector. Records process CPU time too: on a shared machine wall time lies, CPU time less so.

    python benchmarks/demo_budget.py --out runs/demo_budget --steps 250,500,1000,2000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from hwaksan.cli.demo import DEMO_DEFAULTS
from hwaksan.data import shapes
from hwaksan.eval.shapes_score import validity_coverage
from hwaksan.runs.diffusion import DiffusionRun, run_diffusion
from hwaksan.train.data import shapes_data
from hwaksan.train.loop import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/demo_budget")
    p.add_argument("--steps", default="250,500,1000,2000")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    for key, value in DEMO_DEFAULTS.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = shapes_data(args.resolution, length=50_000, seed=0)
    config = shapes.ShapesConfig(resolution=args.resolution, min_objects=1, max_objects=1)
    rows = []
    for target in [int(s) for s in args.steps.split(",")]:
        cpu, wall = time.process_time(), time.perf_counter()
        run = DiffusionRun(
            data="shapes", resolution=args.resolution, preset=args.preset, num_samples=0,
            train=TrainConfig(
                out_dir=str(out), steps=target, batch_size=args.batch_size, lr=args.lr,
                lr_warmup_steps=50, ema_decay=args.ema_decay, checkpoint_every=250,
                resume=True, progress=False,
            ),
        )  # fmt: skip
        pipe, _ = run_diffusion(run, data)
        train_cpu, train_wall = time.process_time() - cpu, time.perf_counter() - wall
        images = pipe.generate(args.n, sampler="ddim", steps=50, seed=0, output_type="pt")
        score = validity_coverage(images, config)
        rows.append(dict(steps=target, train_cpu_s=round(train_cpu, 1),
                         train_wall_s=round(train_wall, 1), validity=score["validity"],
                         coverage=score["coverage"]))  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
        report = dict(settings=vars(args), rows=rows, machine=f"{platform.machine()}",
                      date=datetime.now(timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
        (out / "budget.json").write_text(json.dumps(report, indent=2))  # after every row


if __name__ == "__main__":
    main()
