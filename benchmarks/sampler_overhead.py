"""How much time a sampler spends outside the model: ours beside diffusers' schedulers.

The model is free (it returns one precomputed tensor), so what is timed is the sampler's own
arithmetic per step on a 64x3x32x32 batch. Median of several runs; prints a markdown table
with the machine and date, and writes it to benchmarks/results/sampler_overhead.md.

    python benchmarks/sampler_overhead.py [--steps 50] [--runs 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
)

import hwaksan as hk

SHAPE = (64, 3, 32, 32)
THEIRS = {
    "ddpm": lambda: DDPMScheduler(clip_sample=False),
    "ddim": lambda: DDIMScheduler(clip_sample=False),
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "heun": lambda: HeunDiscreteScheduler(beta_start=1e-4, beta_end=0.02),
}


def median_ms_per_step(run, steps: int, runs: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per step, medians. The process's CPU time ignores the time it waits
    for a core, so on a shared machine it is the steadier measure of its own work."""
    run()  # warm-up
    cpu, wall = [], []
    for _ in range(runs):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu) / steps * 1e3, statistics.median(wall) / steps * 1e3


def ours(sampler: str, steps: int, model_out: torch.Tensor, x_T: torch.Tensor):
    schedule = hk.NoiseSchedule.linear(1000)

    def model(x, t):
        return model_out

    return lambda: hk.sample(
        model, SHAPE, schedule=schedule, sampler=sampler, steps=steps, x_T=x_T,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip


def theirs(sampler: str, steps: int, model_out: torch.Tensor, x_T: torch.Tensor):
    def run():
        scheduler = THEIRS[sampler]()
        scheduler.set_timesteps(steps)
        g = torch.Generator().manual_seed(0)
        kwargs = {"generator": g} if sampler == "ddpm" else {}
        x = x_T * scheduler.init_noise_sigma
        with torch.no_grad():
            for t in scheduler.timesteps:
                scheduler.scale_model_input(x, t)
                x = scheduler.step(model_out, t, x, **kwargs).prev_sample
        return x

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    model_out, x_T = torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)
    rows = []
    for sampler in hk.sampling.SAMPLERS:
        a = median_ms_per_step(ours(sampler, args.steps, model_out, x_T), args.steps, args.runs)
        b = median_ms_per_step(theirs(sampler, args.steps, model_out, x_T), args.steps, args.runs)
        rows.append(f"| {sampler} | {a[0]:.3f} | {b[0]:.3f} | {a[1]:.3f} | {b[1]:.3f} |")
        print(rows[-1], flush=True)
    machine = (
        f"{platform.machine()} {platform.processor() or platform.system()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join(
        [
            "# Sampler overhead (everything but the model), ms per step",
            "",
            f"Batch {'x'.join(map(str, SHAPE))}, {args.steps} steps, median of {args.runs} runs; "
            "the model returns a precomputed tensor; Heun's step makes two model calls. "
            "CPU = this process's CPU time (steady on a shared machine), wall = clock time.",
            f"Machine: {machine}. Date: {when}.",
            "Command: `python benchmarks/sampler_overhead.py "
            f"--steps {args.steps} --runs {args.runs} --threads {args.threads}`",
            "",
            "| sampler | hwaksan, CPU ms/step | diffusers, CPU ms/step | hwaksan, wall ms/step "
            "| diffusers, wall ms/step |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(report)
    out = Path(__file__).parent / "results" / "sampler_overhead.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
