"""`hwaksan distill`: few-step students of a trained model — progressive distillation, consistency
distillation, consistency training (`hwaksan.runs.distill`)."""

from __future__ import annotations

import click

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    PositiveInt,
    fresh_run_folder,
    run_folder_options,
)
from hwaksan.train.loop import TrainConfig


@click.command("distill", short_help="Distill a model into a 1-8 step student.")
@click.argument("method", type=click.Choice(["progressive", "consistency", "consistency-training"]))
@click.option("--teacher", default="digits", show_default=True,
              help="the model folder or shipped name to distill (only read)")  # fmt: skip
@click.option("--steps", type=PositiveInt(10**9), default=600, show_default=True,
              help="optimizer steps (progressive: per halving)")  # fmt: skip
@click.option("--batch-size", type=PositiveInt(65536), default=64, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=1e-4, show_default=True)
@click.option("--warmup", type=BoundedInt(0, 10**9), default=0, show_default=True,
              help="lr warm-up steps (then cosine decay)")  # fmt: skip
@click.option("--guidance-scale", type=FiniteFloat(0, 100), default=1.0, show_default=True,
              help="the teacher's classifier-free guidance, folded into the student")  # fmt: skip
@click.option("--teacher-steps", type=PositiveInt(1000), default=16, show_default=True,
              help="progressive: the teacher's DDIM steps the first student halves")  # fmt: skip
@click.option("--final-steps", type=PositiveInt(1000), default=1, show_default=True,
              help="progressive: halve down to this many steps")  # fmt: skip
@click.option("--num-levels", type=BoundedInt(2, 10000), default=18, show_default=True,
              help="consistency: N of the Karras grid")  # fmt: skip
@click.option("--target-decay", type=FiniteFloat(0, 1, open_max=True), default=0.95,
              show_default=True, help="consistency: EMA decay of the target network")  # fmt: skip
@click.option("--loss", type=click.Choice(["l2", "pseudo_huber", "lpips"]), default="l2",
              show_default=True, help="consistency: the distance (lpips: on the shapes-world "
              "perceptual net)")  # fmt: skip
@click.option("--sample-steps", type=PositiveInt(1000), default=1, show_default=True,
              help="consistency: the step count the saved model defaults to")  # fmt: skip
@click.option("--ema-decay", type=FiniteFloat(0, 1, open_max=True), default=None,
              help="save an EMA of the student's weights (default: the last weights)")  # fmt: skip
@click.option(
    "--init-from-teacher",
    is_flag=True,
    help="consistency-training: start from the teacher's weights (default: fresh)",
)
@click.option("--dropout", type=FiniteFloat(0, 1, open_max=True), default=0.0, show_default=True,
              help="consistency-training: dropout in the fresh U-Net (iCT: 0.3)")  # fmt: skip
@click.option("--checkpoint-every", type=PositiveInt(10**9), default=100, show_default=True)
@run_folder_options("runs/distill")
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(method: str, **o) -> None:
    """Train a few-step student of --teacher with METHOD (progressive, consistency or
    consistency-training); writes checkpoints, log.csv, progress grids and model/, which samples
    with the sampler and steps it was made for (`hwaksan sample <out>/model`)."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    from hwaksan.runs.distill import DistillRun, run_distill

    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        lr_warmup_steps=o["warmup"], seed=o["seed"], checkpoint_every=o["checkpoint_every"],
        resume=o["resume"], sample_every=max(1, o["steps"] // 4), log_every=1,
    )  # fmt: skip
    run = DistillRun(
        method=method, teacher=o["teacher"], guidance_scale=o["guidance_scale"],
        teacher_steps=o["teacher_steps"], final_steps=o["final_steps"],
        num_levels=o["num_levels"], target_decay=o["target_decay"], loss=o["loss"],
        init_from_teacher=o["init_from_teacher"], sample_steps=o["sample_steps"],
        ema_decay=o["ema_decay"], dropout=o["dropout"], train=config,
    )  # fmt: skip
    pipe, _ = run_distill(run)
    click.echo(f"saved {o['out_dir']}/model: sample it with `hwaksan sample {o['out_dir']}/model` "
               f"({pipe.sampler}, {pipe.steps} steps)")  # fmt: skip
