"""`hwaksan nll`: the variational bound on a saved model's negative log-likelihood, in bits/dim."""

from __future__ import annotations

import json
import math

import click
import torch

from hwaksan.cli.options import SEED, PositiveInt
from hwaksan.errors import HwaksanError


def heldout_images(data: str, image_shape: tuple[int, int, int], n: int) -> torch.Tensor:
    """n images the model did not train on, quantized to 8 bits: [n, C, R, R] in [-1, 1].

    digits: the held-out split; shapes: scenes from another seed; a folder: its first n images.
    """
    resolution = image_shape[-1]
    if data == "digits":
        from hwaksan.data.digits import DigitsDataset

        dataset = DigitsDataset(split="heldout", resolution=resolution)
    elif data == "shapes":
        from hwaksan.train.data import shapes_data

        dataset = shapes_data(resolution, length=n, seed=1).dataset  # training uses seed 0
    else:
        from hwaksan.train.data import training_data

        dataset = training_data(data, resolution).dataset
    images = torch.stack([dataset[i]["image"] for i in range(min(n, len(dataset)))])
    if images.shape[1:] != image_shape:
        raise HwaksanError(
            f"--data {data} gives {tuple(images.shape[1:])} images; the model takes {image_shape}"
        )
    return ((images.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # the 8-bit grid


@click.command("nll")
@click.argument("model")
@click.option("--data", default=None, help="shapes, digits or a folder (default: the model's)")
@click.option(
    "-n", "n", type=PositiveInt(100_000), default=64, show_default=True, help="number of images"
)
@click.option("--batch-size", type=PositiveInt(4096), default=16, show_default=True)
@click.option(
    "--batch-of-t", type=PositiveInt(1000), default=10, show_default=True, help="timesteps per call"
)
@click.option(
    "--variance",
    type=click.Choice(["fixed_large", "fixed_small"]),
    default="fixed_large",
    show_default=True,
    help="reverse variance of a model that does not learn one",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def command(model, data, n, batch_size, batch_of_t, variance, seed, as_json) -> None:
    """Bound MODEL's NLL in bits/dim on N held-out 8-bit images (class models: unconditional)."""
    from tqdm.auto import tqdm

    from hwaksan.diffusion.likelihood import nll_bits_per_dim
    from hwaksan.model_folder import load

    pipe = load(model)
    data = data or pipe.data.get("name")
    if data is None or data == "folder":
        data = pipe.data.get("path") or data
    if data is None:
        raise HwaksanError("the model does not say what data it learned; pass --data")
    images = heldout_images(data, pipe.image_shape, n)
    variance_type = "learned_range" if pipe.learn_sigma else variance
    cond = {}
    if pipe.num_classes is not None:  # the null class: the model's unconditional density
        cond = {"class_labels": torch.full((batch_size,), pipe.num_classes, device=pipe.device)}
    generator = torch.Generator(pipe.device).manual_seed(seed)
    keys = ("bpd", "prior_bpd", "decoder_bpd")
    results = {key: [] for key in keys}
    for x0 in tqdm(images.split(batch_size), desc="nll", disable=as_json):
        batch_cond = {k: v[: len(x0)] for k, v in cond.items()}
        out = nll_bits_per_dim(
            pipe.unet, x0.to(pipe.device), pipe.schedule, prediction_type=pipe.prediction_type,
            variance_type=variance_type, cond=batch_cond, batch_of_t=batch_of_t,
            generator=generator,
        )  # fmt: skip
        for key in keys:
            results[key].append(out[key].cpu())
    bpd = torch.cat(results["bpd"])
    summary = {
        "bpd": float(bpd.mean()),
        "bpd_se": float(bpd.std() / math.sqrt(len(bpd))) if len(bpd) > 1 else 0.0,
        "prior_bpd": float(torch.cat(results["prior_bpd"]).mean()),
        "decoder_bpd": float(torch.cat(results["decoder_bpd"]).mean()),
        "images": len(bpd),
        "data": str(data),
        "variance_type": variance_type,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"NLL bound on {len(bpd)} held-out {data} images ({variance_type} variance)")
    click.echo(f"  bits/dim      {summary['bpd']:.4f} +- {summary['bpd_se']:.4f}")
    click.echo(f"  prior L_T     {summary['prior_bpd']:.5f}")
    click.echo(f"  decoder L_0   {summary['decoder_bpd']:.4f}")
