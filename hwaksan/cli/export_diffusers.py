"""`hwaksan export-diffusers`: a model written as a folder Hugging Face diffusers loads."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hwaksan.cli.options import OutputFolder


@click.command("export-diffusers", short_help="Write a model as a folder diffusers loads.")
@click.argument("model")
@click.argument("out", type=OutputFolder())
@click.option("--decoder-only", is_flag=True,
              help="export a KL autoencoder whose encoder does not map (generation matches, "
              "vae.encode does not)")  # fmt: skip
@click.option("--lora", "loras", multiple=True, metavar="PATH",
              help="a LoRA file or folder to write beside the model in diffusers' names "
              "(repeatable: each in its own subfolder)")  # fmt: skip
def command(model, out, decoder_only, loras):
    """Write MODEL (a shipped name or folder) to the new folder OUT in diffusers' format, e.g.

    hwaksan export-diffusers shapes shapes-diffusers

    then DDIMPipeline.from_pretrained("shapes-diffusers") in diffusers. Pixel models become a
    DDIMPipeline (UNet2DModel + scheduler), latent ones an LDMPipeline with an AutoencoderKL
    (--decoder-only), a KL autoencoder alone an AutoencoderKL folder. A part that does not map
    (a text-to-image U-Net, several attention head widths) is named in the error. With --lora
    the LoRA goes beside the model as pytorch_lora_weights.safetensors, in UNet2DModel's layer
    names (peft reads it onto the U-Net).
    """
    from hwaksan.interop.export import export_autoencoder, export_diffusers

    if _is_autoencoder(model):
        if loras:
            raise click.UsageError("--lora goes with a diffusion model, not an autoencoder")
        from hwaksan.nets.autoencoder import load_autoencoder

        written = export_autoencoder(load_autoencoder(model, "cpu"), out, decoder_only)
    else:
        from hwaksan.model_folder import load

        pipe = load(model, device="cpu")
        for lora in loras:
            pipe.load_lora_weights(lora, adapter_name=Path(lora).stem if len(loras) > 1 else None)
        written = export_diffusers(pipe, out, decoder_only)
    click.echo(f"wrote {written} (diffusers format)")


def _is_autoencoder(model: str) -> bool:
    """Whether MODEL names a hwaksan autoencoder (a shipped name or its folder)."""
    from hwaksan.nets.autoencoder.io import MODEL_KIND, SHIPPED

    if model in SHIPPED:
        return True
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(config, dict) and config.get("model_kind") == MODEL_KIND
