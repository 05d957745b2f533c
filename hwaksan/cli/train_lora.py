"""`hwaksan train-lora`: a LoRA on a frozen text-to-image model, from captioned images."""

from __future__ import annotations

import click

from hwaksan.cli.options import (
    SEED,
    BoundedInt,
    FiniteFloat,
    PositiveInt,
    fresh_run_folder,
    max_minutes_option,
    run_folder_options,
)
from hwaksan.train.loop import TrainConfig, channels_last_default


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


@click.command("train-lora", short_help="Train a LoRA on a frozen text-to-image model.")
@click.option("--base", default="shapes_t2i_64", show_default=True,
              help="the frozen text-to-image model: a shipped name or a folder")  # fmt: skip
@click.option("--data", default="shapes", show_default=True,
              help="shapes (the base's world) or a folder with metadata.jsonl")  # fmt: skip
@click.option("--watermark", is_flag=True, help="shapes: stamp the watermark look on every image")
@click.option("--scenes", type=PositiveInt(10**7), default=4000, show_default=True,
              help="shapes: scenes to render")  # fmt: skip
@click.option("--rank", type=PositiveInt(4096), default=4, show_default=True, help="LoRA rank r")
@click.option("--lora-alpha", type=FiniteFloat(0, open_min=True), default=None,
              help="scale = alpha / r (default: alpha = r)")  # fmt: skip
@click.option("--lora-dropout", type=FiniteFloat(0, 1, open_max=True), default=0.0,
              show_default=True)  # fmt: skip
@click.option("--target-modules", default="to_q,to_k,to_v,to_out", show_default=True,
              help="U-Net layers by last or full name; also skip, conv1, conv2")  # fmt: skip
@click.option("--text-encoder-modules", default="",
              help="text-encoder layers to adapt too, e.g. to_q,to_k,to_v,to_out")  # fmt: skip
@click.option("--steps", type=PositiveInt(10**9), default=1000, show_default=True)
@click.option("--batch-size", type=PositiveInt(65536), default=64, show_default=True)
@click.option("--lr", type=FiniteFloat(0, 10, open_min=True), default=1e-3, show_default=True)
@click.option("--warmup", type=BoundedInt(0, 10**9), default=50, show_default=True)
@click.option("--ema-decay", type=FiniteFloat(0, 1, open_max=True), default=0.99,
              show_default=True, help="0 = no EMA")  # fmt: skip
@click.option("--bf16", is_flag=True, help="bf16 autocast")
@click.option("--sample-every", type=BoundedInt(0, 10**9), default=0, show_default=True,
              help="0 = at the end")  # fmt: skip
@click.option("--num-samples", type=BoundedInt(0, 1024), default=8, show_default=True)
@click.option("--checkpoint-every", type=PositiveInt(10**9), default=250, show_default=True)
@run_folder_options("runs/lora")
@max_minutes_option(help="stop after this much training time")
@click.option("--seed", type=SEED, default=0, show_default=True)
def command(**o) -> None:
    """Train a LoRA (Hu et al. 2021) on a frozen text-to-image model: only the low-rank layers
    train; writes checkpoints, log.csv, samples/ and lora/pytorch_lora_weights.safetensors
    (load it with pipe.load_lora_weights or `hwaksan generate --lora`)."""
    fresh_run_folder(o["out_dir"], o["resume"], o.pop("overwrite"))
    from hwaksan.runs.lora import LoRARun, run_lora

    config = TrainConfig(
        out_dir=o["out_dir"], steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"],
        lr_warmup_steps=o["warmup"], ema_decay=o["ema_decay"] or None, bf16=o["bf16"],
        channels_last=channels_last_default(o["bf16"]), seed=o["seed"],
        checkpoint_every=o["checkpoint_every"], sample_every=o["sample_every"],
        resume=o["resume"], max_minutes=o["max_minutes"],
    )  # fmt: skip
    run = LoRARun(
        base=o["base"], data=o["data"], watermark=o["watermark"], scenes=o["scenes"],
        rank=o["rank"], lora_alpha=o["lora_alpha"], lora_dropout=o["lora_dropout"],
        target_modules=_names(o["target_modules"]),
        text_encoder_modules=_names(o["text_encoder_modules"]), num_samples=o["num_samples"],
        train=config,
    )  # fmt: skip
    _, result = run_lora(run)
    click.echo(f"trained {result.step} steps; LoRA saved to {result.out_dir / 'lora'}")
