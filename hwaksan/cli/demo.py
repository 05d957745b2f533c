"""`hwaksan demo`: train a small model on the shapes world, sample it two ways, score it.

Everything lands in `--out` (default runs/demo): the training run (log, loss curve, checkpoints,
model), a sample grid per sampler, and `scores.json`. Trains by steps, not by the clock, so the
result means the same on a slow machine; the kernels compile before the clock starts.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import torch

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    OutputFolder,
    PositiveInt,
    max_minutes_option,
)

# The recipe, chosen by measurement (benchmarks/demo_budget.py): 16 px single shapes, the tiny
# U-Net, v-prediction on a cosine schedule, trailing DDIM spacing, EMA. Validity of DDIM-50
# samples was 55% after 750 steps and 89% after 1,500; 2,000 steps leave a margin. Training
# stops by steps; `--minutes` is an optional cap, and a run cut short says so.
DEMO_DEFAULTS = dict(resolution=16, preset="tiny", batch_size=64, lr=2e-3, ema_decay=0.995)
SAMPLERS = (("ddim", 50), ("dpmpp_2m", 20))


@click.command("demo", short_help="Train, sample and score a small shapes model by steps.")
@click.option(
    "--out", type=OutputFolder(), default="runs/demo", show_default=True, help="output folder"
)
@max_minutes_option(help="optional cap on training time (the demo trains by --steps)")
@click.option(
    "--steps", type=PositiveInt(10**9), default=2000, show_default=True, help="training steps"
)
@click.option(
    "-n", "n", type=BoundedInt(2, 10_000), default=256, show_default=True, help="samples to score"
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--resolution",
    type=click.Choice([16, 32, 64]),
    default=DEMO_DEFAULTS["resolution"],
    hidden=True,
)
@click.option("--preset", default=DEMO_DEFAULTS["preset"], hidden=True)
@click.option(
    "--batch-size", type=PositiveInt(65536), default=DEMO_DEFAULTS["batch_size"], hidden=True
)
@click.option(
    "--lr", type=FiniteFloat(0, 10, open_min=True), default=DEMO_DEFAULTS["lr"], hidden=True
)
@click.option(
    "--ema-decay",
    type=FiniteFloat(0, 1, open_max=True),
    default=DEMO_DEFAULTS["ema_decay"],
    hidden=True,
)
def command(
    out, max_minutes, steps, n, seed, resolution, preset, batch_size, lr, ema_decay
) -> None:
    """Train on the shapes world (2,000 steps), then sample and score (validity, coverage,
    Frechet distance); writes everything to --out."""
    from hwaksan.runs.diffusion import DiffusionRun, run_diffusion
    from hwaksan.train.data import shapes_data
    from hwaksan.train.loop import TrainConfig, channels_last_default

    out = Path(out)
    _build_kernels()  # a first run's compile (~40 s) is not training time
    start = time.perf_counter()
    data = shapes_data(resolution, length=20_000, seed=seed)
    click.echo(f"1/3 training a {preset} U-Net on {resolution} px shapes for {steps} steps "
               "(the bar's ETA is from the steps so far)")  # fmt: skip
    run = DiffusionRun(
        data="shapes", resolution=resolution, preset=preset, num_samples=16,
        train=TrainConfig(
            out_dir=str(out / "train"), steps=steps, batch_size=batch_size, lr=lr,
            lr_warmup_steps=50, ema_decay=ema_decay, checkpoint_every=500, sample_every=0,
            seed=seed, max_minutes=max_minutes, channels_last=channels_last_default(bf16=False),
        ),
    )  # fmt: skip
    pipe, result = run_diffusion(run, data)
    train_minutes = (time.perf_counter() - start) / 60

    click.echo(f"2/3 sampling {n} images with {' and '.join(s for s, _ in SAMPLERS)}")
    samples = {}
    for sampler, sampler_steps in SAMPLERS:
        images = pipe.generate(
            n, sampler=sampler, steps=sampler_steps, seed=seed, output_type="pt", progress=True
        )
        samples[sampler] = images
        _save_grid(images[:64], out / f"samples_{sampler}_{sampler_steps}.png")

    click.echo("3/3 scoring against fresh renders of the shapes world")
    scores = _score(samples, resolution, n, seed)
    report = {
        "scores": {f"{s}-{k}": scores[s] for s, k in SAMPLERS},
        "train_steps": result.step,
        "train_minutes": round(train_minutes, 2),
        "total_minutes": round((time.perf_counter() - start) / 60, 2),
        "settings": dict(resolution=resolution, preset=preset, batch_size=batch_size, lr=lr,
                         ema_decay=ema_decay, n=n, seed=seed),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    (out / "scores.json").write_text(json.dumps(report, indent=2))
    _print_table(report)
    verdict = _verdict(report, steps)
    if verdict:
        click.secho(verdict, fg="yellow", err=True)


def _build_kernels() -> None:
    """Compile (or load) the fused CPU kernels now, so the training clock and ETA leave them out."""
    from hwaksan.nets import kernels

    kernels.group_norm(), kernels.attention()


GOOD_VALIDITY = 0.8  # a full demo run scores ~0.9 (benchmarks/results/demo_run.json)


def _verdict(report: dict, steps: int) -> str | None:
    """One sentence when the result does not mean what the README says (training stopped short,
    or validity under GOOD_VALIDITY), with what to do; None when all is well."""
    trained = report["train_steps"]
    validity = min(score["validity"] for score in report["scores"].values())
    if trained < steps:
        return (f"note: training stopped at step {trained} of {steps}, so these scores are not "
                "the demo's; rerun without --minutes (or with --steps lowered) to get "
                "a finished run.")  # fmt: skip
    if validity < GOOD_VALIDITY:
        return (
            f"note: validity {validity:.0%} is under the {GOOD_VALIDITY:.0%} a full run "
            f"reaches; train longer (--steps {2 * steps}) or try another --seed."
        )
    return None


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from hwaksan.images import save_grid

    save_grid(images, path, nrow=8, scale=4)


def _score(samples: dict[str, torch.Tensor], resolution: int, n: int, seed: int) -> dict:
    from tqdm.auto import tqdm

    from hwaksan.eval.report import evaluate, reference_images

    options = dict(min_objects=1, max_objects=1)
    real = reference_images("shapes", n, seed + 10_000, resolution, **options)
    scores = {}
    for sampler, images in tqdm(samples.items(), desc="scoring", unit="sampler"):
        full = evaluate(images, real, "shapes", feature="shapes", kid_subset_size=min(n, 1000),
                        **options)  # fmt: skip
        scores[sampler] = {k: v for k, v in full.items() if isinstance(v, (int, float))}
        scores[sampler]["n"] = len(images)
    return scores


def _print_table(report: dict) -> None:
    click.echo(f"\ntrained {report['train_steps']} steps in {report['train_minutes']} min; "
               f"total {report['total_minutes']} min")  # fmt: skip
    rows = report["scores"]
    keys = ["validity", "coverage", "frechet_distance", "kid_mean"]
    click.echo(f"{'sampler':<12}" + "".join(f"{k:>18}" for k in keys))
    for name, score in rows.items():
        click.echo(f"{name:<12}" + "".join(f"{score.get(k, float('nan')):>18.4g}" for k in keys))
