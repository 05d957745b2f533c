"""One net's fp32 training step timed alone in its own process (no other net's allocations in
the heap): the cross-check of `train_throughput.py`, whose interleaved runs can favour one net.

    python benchmarks/train_throughput_alone.py diffusers
    python benchmarks/train_throughput_alone.py ours      # channels-last fp32
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if __name__ == "__main__":
    from train_throughput import Stepper, build_pair

    which = sys.argv[1] if len(sys.argv) > 1 else "ours"
    ours, theirs = build_pair(channels_last=which == "ours")
    step = Stepper(ours if which == "ours" else theirs, 64, False)
    step(), step()  # warm-up
    times = [step() for _ in range(6)]
    print(f"{which}: median {statistics.median(times):.2f} s/step, best {min(times):.2f}",
          [round(t, 2) for t in times])  # fmt: skip
