"""How many CPU threads torch uses: the idle cores, not every core. On a 2-core machine with one
other busy process, two threads made a training step 5x slower than one (each parallel region
waits for the thread the OS parked); on an idle one both cores are used, as before.
benchmarks/results/threads.md has the measurements."""

from __future__ import annotations

import math
import os
import statistics
import time

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def runnable_others(samples: int = 9, interval: float = 0.01) -> float:
    """Processes running or waiting for a core right now, besides this one: the median of a few
    reads of /proc/loadavg's running count. The 1-minute load average lags a process that started
    seconds ago; this does not. 0 where /proc is absent."""
    counts = []
    for i in range(samples):
        try:
            running = open("/proc/loadavg").read().split()[3].split("/")[0]
        except (OSError, IndexError):
            return 0.0
        counts.append(max(0, int(running) - 1))  # the count includes the reader
        if i + 1 < samples:
            time.sleep(interval)
    return statistics.median(counts)


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """The idle cores: `cores` minus the processes already there (the larger of the 1-minute load
    average and the processes runnable now, rounded to the nearest whole process), at least 1.
    OMP_NUM_THREADS, when set, wins."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average (Windows): use every core
            load = 0.0
        load = max(load, runnable_others())
    busy = math.floor(load + 0.5)  # 0.4 -> 0 other processes, 0.6 -> 1
    return max(1, min(cores, cores - busy))


def set_threads(threads: int | None = None) -> int:
    """Set torch's thread count to `threads`, or to `default_threads()` when None; returns it."""
    n = default_threads() if threads is None else threads
    if n < 1:
        from hwaksan.errors import HwaksanError

        raise HwaksanError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    return n
