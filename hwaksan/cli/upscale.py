"""`hwaksan upscale`: a low-res image made larger by a super-resolution model."""

from __future__ import annotations

import click

from hwaksan.cli.checks import check_steps
from hwaksan.cli.options import SEED, BoundedInt, ImageFile, InputImage, PositiveInt
from hwaksan.errors import HwaksanError

SHIPPED_BY_SIZE = {(16, 16): "shapes_sr16", (32, 32): "shapes_sr"}  # input size -> default model


@click.command("upscale", short_help="A low-res image upscaled by a super-resolution model.")
@click.argument("image", type=InputImage())
@click.option("--model", default=None,
              help="a folder or shipped name (default: shapes_sr16 for a 16 px image, "
              "shapes_sr for 32 px)")  # fmt: skip
@click.option("-n", "n", type=PositiveInt(64), default=1, show_default=True,
              help="upscaled versions (different seeds of the same input)")  # fmt: skip
@click.option("--steps", type=PositiveInt(10_000), default=None,
              help="sampling steps (default: the model's)")  # fmt: skip
@click.option(
    "--noise-level",
    type=BoundedInt(0, 1000),
    default=None,
    help="conditioning augmentation level of the input (default: the model's)",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--scale", type=PositiveInt(16), default=1, show_default=True,
              help="extra nearest-neighbour enlargement of the written grid")  # fmt: skip
@click.option("--out", type=ImageFile(), default="upscaled.png", show_default=True,
              help="image (grid) to write")  # fmt: skip
def command(image, model, n, steps, noise_level, seed, scale, out):
    """Upscale IMAGE (a PNG at the model's low resolution: 16 or 32 px for the shipped ones):

    hwaksan upscale small.png --out big.png
    """
    from hwaksan.images import save_grid
    from hwaksan.model_folder import load

    if model is None:
        model = SHIPPED_BY_SIZE.get(image.size)
        if model is None:
            raise HwaksanError(f"the image is {image.width}x{image.height} px; the shipped "
                               "models upscale 16x16 (shapes_sr16), 32x32 (shapes_sr)")  # fmt: skip
    pipe = load(model)
    condition = pipe.condition or {}
    if condition.get("kind") != "super_resolution":
        raise HwaksanError(f"{model} is not a super-resolution model")
    check_steps(pipe, steps)
    r = condition["low_res"]
    if image.size != (r, r):
        raise HwaksanError(f"the image is {image.width}x{image.height} px; {model} upscales "
                           f"{r}x{r} px images")  # fmt: skip
    if noise_level is not None and noise_level >= condition["noise_levels"]:
        raise HwaksanError(f"--noise-level must be in 0..{condition['noise_levels'] - 1}")
    images = pipe.generate(n, steps=steps, seed=seed, image=image, noise_level=noise_level,
                           progress=True, output_type="pt")  # fmt: skip
    save_grid(images, out, nrow=n, scale=scale)
    side = pipe.image_shape[-1]
    click.echo(f"wrote {n} image(s) upscaled {r} -> {side} px to {out}")
