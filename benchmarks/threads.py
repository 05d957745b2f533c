"""A training step of the demo's U-Net (tiny, 16 px, batch 64, channels-last fp32, AdamW) at 1 and
2 torch threads, on an idle machine and beside one CPU-bound process (a busy loop, as any other
program on a laptop), with OpenMP's default and passive wait policies. Each configuration runs in
a fresh process (OMP_WAIT_POLICY is read when torch loads); medians of `--steps` timed steps.
Writes benchmarks/results/threads.md/.json with the load average seen, since a shared machine's
"idle" is only as idle as its neighbours let it be.

    python benchmarks/threads.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = [(1, "default"), (2, "default"), (2, "passive")]  # (threads, OMP wait policy)


def time_steps(threads: int, steps: int) -> list[float]:
    """Seconds per training step (after two warm-up steps), built and timed in this process."""
    import torch

    from hwaksan.diffusion import NoiseSchedule
    from hwaksan.diffusion.losses import diffusion_loss
    from hwaksan.nets import build_unet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    unet = build_unet("tiny", in_channels=3, resolution=16).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-3)
    schedule = NoiseSchedule.cosine(1000)
    x0 = (torch.rand(64, 3, 16, 16) * 2 - 1).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = diffusion_loss(unet, x0, schedule, prediction_type="v_prediction")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def _child(threads: int, wait: str, steps: int) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if wait == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([sys.executable, __file__, "--child", str(threads), "--steps", str(steps)],
                         env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def measure(steps: int) -> list[dict]:
    """Every configuration idle, then every one beside a busy loop."""
    rows = []
    for load in ("idle", "loaded"):
        hog = None
        if load == "loaded":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for threads, wait in CONFIGS:
                before = os.getloadavg()[0]
                times = _child(threads, wait, steps)
                load_avg = round((before + os.getloadavg()[0]) / 2, 2)
                rows.append(dict(machine_state=load, threads=threads, omp_wait=wait,
                                 median_s=round(statistics.median(times), 4),
                                 times_s=[round(t, 4) for t in times],
                                 load_avg_1min=load_avg))  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(time_steps(args.child, args.steps)))
        return
    from report import write_report

    from hwaksan.runtime_threads import default_threads

    rows = measure(args.steps)
    lines = [
        "# Training-step time vs torch threads, idle and beside a busy process",
        "",
        f"`python benchmarks/threads.py --steps {args.steps}`; {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {datetime.now(timezone.utc).isoformat(timespec='seconds')}. "
        "The demo's U-Net (tiny, 16 px), batch 64, channels-last fp32, AdamW; medians of "
        f"{args.steps} steps after 2 warm-up steps. 'loaded': one `while True: pass` process "
        "beside it. The load average is the machine's (other users' processes included).",
        "",
        "| machine | threads | OMP wait policy | median s/step | 1-min load avg |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['machine_state']} | {r['threads']} | {r['omp_wait']} | "
                     f"{r['median_s']:.3f} | {r['load_avg_1min']} |")  # fmt: skip
    lines += ["", f"`default_threads()` here and now: {default_threads()}."]
    write_report("threads", lines, rows)


if __name__ == "__main__":
    main()
