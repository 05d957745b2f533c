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
def command(model, out, decoder_only):
    """Write MODEL (a shipped name or folder) to the new folder OUT in diffusers' format, e.g.

    hwaksan export-diffusers shapes shapes-diffusers

    then DDIMPipeline.from_pretrained("shapes-diffusers") in diffusers. Pixel models become a
    DDIMPipeline (UNet2DModel + scheduler), latent ones an LDMPipeline with an AutoencoderKL
    (--decoder-only), a KL autoencoder alone an AutoencoderKL folder. A part that does not map
    (a text-to-image U-Net, several attention head widths) is named in the error.
    """
    from hwaksan.interop.export import export_autoencoder, export_diffusers

    if _is_autoencoder(model):
        from hwaksan.nets.autoencoder import load_autoencoder

        written = export_autoencoder(load_autoencoder(model, "cpu"), out, decoder_only)
    else:
        from hwaksan.model_folder import load

        written = export_diffusers(load(model, device="cpu"), out, decoder_only)
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
