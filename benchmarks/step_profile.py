"""Where one fp32 training step of the throughput benchmark's net goes: `torch.profiler` self time
per op, grouped (convolutions, attention, GroupNorm, the rest), for ours (channels-last, fused
kernels) or diffusers' `UNet2DModel`.

    python benchmarks/step_profile.py [ours|diffusers] [--steps 3]
Writes benchmarks/results/step_profile_<net>.md and .json. Run it under the allocator you compare
with (e.g. LD_PRELOAD=libtcmalloc_minimal.so.4): the allocator changes the copies' share.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = {  # op-name fragment -> group; the first match wins
    "convolution": "convolutions (oneDNN)",
    "_SelfAttention": "attention",
    "scaled_dot_product": "attention",
    "GroupNorm": "GroupNorm",
    "group_norm": "GroupNorm",
    "aten::mm": "matmul (MKL)",
    "addmm": "matmul (MKL)",
    "bmm": "matmul (MKL)",
}


def group_of(name: str) -> str:
    return next((g for key, g in GROUPS.items() if key in name), "copies, adds, the rest")


def main() -> None:
    from report import write_report
    from train_throughput import Stepper, build_pair

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", nargs="?", default="ours", choices=["ours", "diffusers"])
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    ours, theirs = build_pair(channels_last=args.net == "ours")
    step = Stepper(ours if args.net == "ours" else theirs, 64, False)
    step(), step()  # warm-up (and the kernels' first-use compile)
    with profile() as prof:
        for _ in range(args.steps):
            step()
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        group = group_of(event.key)
        shares[group] = shares.get(group, 0.0) + event.self_cpu_time_total / 1e3 / args.steps
    total = sum(shares.values())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    allocator = os.environ.get("LD_PRELOAD", "") or "glibc"
    lines = [
        f"# Where one fp32 training step goes: {args.net} (batch 64, 32 px, 6.47 M params)",
        "",
        f"- {now}; torch {torch.__version__}, {torch.get_num_threads()} threads, allocator "
        f"{allocator}; `torch.profiler` self CPU time, mean of {args.steps} steps",
        "",
        "| group | ms per step | share |",
        "|---|---|---|",
        *(
            f"| {g} | {ms:.0f} | {ms / total:.0%} |"
            for g, ms in sorted(shares.items(), key=lambda kv: -kv[1])
        ),  # fmt: skip
        f"| total | {total:.0f} | 100% |",
        "",
        f"Command: `python benchmarks/step_profile.py {args.net} --steps {args.steps}`",
    ]
    write_report(f"step_profile_{args.net}", lines, dict(ms_per_step=shares, when=now))


if __name__ == "__main__":
    main()
