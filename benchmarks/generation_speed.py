"""The seed's speed story, measured here: how long 50,000 images take with the teacher at DDPM-1000,
DDIM-50 and with each distilled student at 1 and 4 steps.

Each row generates one batch (`--batch`) `--repeats` times after a warm-up batch; the median
batch time gives images per second, and 50,000 images are extrapolated from it (DDPM-1000 too: a
measured batch, not a guess). The speed-up is over the teacher's DDPM-1000 in the same run. Run it
on a quiet machine: the rows are compared as ratios of one run.

    python benchmarks/generation_speed.py --teacher shapes32 --student shapes32_cd \\
        --student shapes32_ct --student shapes32_pd:euler:4 --student shapes32_pd1:euler:1

A student is MODEL[:SAMPLER[:STEPS]]: its own sampler by default, timed at 1 and 4 steps unless
STEPS names the one it was made for (a progressive student is one model per step count).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_report  # noqa: E402

TOTAL = 50_000  # the seed's "50,000 32x32 images took 20 hours"


def batch_seconds(pipe, sampler: str, steps: int, batch: int, repeats: int) -> float:
    """Median seconds for one batch of `batch` images (after one warm-up batch)."""
    kwargs = dict(sampler=sampler, steps=steps, batch_size=batch, progress=False,
                  output_type="pt")  # fmt: skip
    if pipe.num_classes is not None:
        kwargs["class_labels"] = [i % pipe.num_classes for i in range(batch)]
    pipe.generate(batch, seed=0, **kwargs)
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        pipe.generate(batch, seed=r + 1, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def student_spec(spec: str) -> tuple[str, str, list[int]]:
    """MODEL[:SAMPLER[:STEPS]] -> (model, sampler or "", the steps to time it at)."""
    name, _, rest = spec.partition(":")
    sampler, _, steps = rest.partition(":")
    if steps and not steps.isdigit():
        raise argparse.ArgumentTypeError(f"STEPS must be a whole number, not {steps!r}")
    return name, sampler, [int(steps)] if steps else [1, 4]


def main() -> None:
    import hwaksan as hk

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="digits")
    p.add_argument("--student", action="append", default=[], type=student_spec,
                   metavar="MODEL[:SAMPLER[:STEPS]]",
                   help="a distilled model, its sampler and steps (repeatable)")  # fmt: skip
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--ddpm-batch", type=int, default=50, help="the DDPM-1000 row's batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--name", default="generation_speed")
    a = p.parse_args()
    teacher = hk.load(a.teacher, device="cpu")
    rows = [(a.teacher, teacher, "ddpm", teacher.schedule.num_train_timesteps, a.ddpm_batch),
            (a.teacher, teacher, "ddim", 50, a.batch)]  # fmt: skip
    for name, sampler, step_counts in a.student:
        student = hk.load(name, device="cpu")
        for steps in step_counts:
            rows.append((name, student, sampler or student.sampler, steps, a.batch))
    results = []
    for name, pipe, sampler, steps, batch in rows:
        seconds = batch_seconds(pipe, sampler, steps, batch, a.repeats)
        results.append({"model": name, "sampler": sampler, "steps": steps, "batch": batch,
                        "batch_s": seconds, "images_per_s": batch / seconds,
                        "hours_50k": TOTAL / (batch / seconds) / 3600})  # fmt: skip
        print(results[-1], flush=True)
    base = results[0]["images_per_s"]
    c, h, w = teacher.image_shape
    table = [f"# Generating {TOTAL:,} {w}x{h} images ({a.teacher} and its students; "
             f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
             f"thread(s), {datetime.now(timezone.utc):%Y-%m-%d})", "",
             f"`python benchmarks/generation_speed.py {' '.join(sys.argv[1:])}`: median of "
             f"{a.repeats} batches after a warm-up; 50,000 extrapolated from the batch time.", "",
             "| model | sampler | steps | images/s | 50,000 images | speed-up over DDPM-1000 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        hours = r["hours_50k"]
        span = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.1f} min"
        speedup = r["images_per_s"] / base
        table.append(f"| {r['model']} | {r['sampler']} | {r['steps']} | "
                     f"{r['images_per_s']:.1f} | {span} | {speedup:.0f}x |")  # fmt: skip
    write_report(a.name, table, results)


if __name__ == "__main__":
    main()
