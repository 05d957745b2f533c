"""How fast the shapes world renders and reads back, on ONE core.

    python benchmarks/shapes_speed.py [--n 2000] [--out shapes_speed.json]

Prints a markdown table (images/s by wall clock and by process CPU time: on a shared machine
the CPU-time rate is the steadier one) with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import torch

from hwaksan.data import shapes


def _rate(fn, n: int, repeats: int = 3) -> tuple[float, float]:
    """Best images/s over `repeats` runs, by wall clock and by process CPU time."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(n / (time.perf_counter() - w))
        cpu.append(n / max(time.process_time() - c, 1e-9))
    return max(wall), max(cpu)


def _cases(resolution: int, n: int) -> dict:
    """What to time at one resolution: name -> (function, images it makes or reads)."""
    cfg = shapes.ShapesConfig(resolution=resolution, shapes=shapes.ALL_SHAPES)
    images, _ = shapes.render_batch(n, seed=0, config=cfg)
    ds = shapes.ShapesDataset(cfg, length=n)
    plain = shapes.ShapesDataset(cfg, length=n, control=False)
    k = n // 4  # per-item paths and the detector are slower; time a quarter as many
    return {
        "render_batch": (lambda: shapes.render_batch(n, seed=1, config=cfg), n),
        "dataset item (image only)": (lambda: [plain[i] for i in range(k)], k),
        "dataset item (+ edges, mask)": (lambda: [ds[i] for i in range(k)], k),
        "detect": (lambda: [shapes.detect(x) for x in images[:k]], k),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images per measurement")
    ap.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n, rows = args.n, []
    for resolution in (16, 32, 64):
        for name, (fn, count) in _cases(resolution, n).items():
            wall, cpu = _rate(fn, count)
            rows.append(dict(resolution=resolution, what=name, wall=wall, cpu=cpu, images=count))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"shapes world speed, 1 thread, torch {torch.__version__}, {machine}, {stamp}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| resolution | what | images/s (wall) | images/s (CPU time) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['resolution']} | {r['what']} | {r['wall']:,.0f} | {r['cpu']:,.0f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(machine=machine, date=stamp, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
