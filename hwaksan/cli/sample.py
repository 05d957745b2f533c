"""`hwaksan sample`: a PNG grid of samples from a saved model (a folder or a shipped name)."""

from __future__ import annotations

import click

from hwaksan.cli.checks import check_class_label, check_steps
from hwaksan.cli.options import SEED, FiniteFloat, ImageFile, PositiveInt
from hwaksan.errors import HwaksanError
from hwaksan.registry import SHIPPED
from hwaksan.sampling.registry import sampler_names

MAX_IMAGES = 1024  # one grid; more is a memory problem, not a picture
DIFFUSION_MODELS = [name for name in SHIPPED if "classifier" not in name]


@click.command("sample", epilog="Shipped models: " + ", ".join(DIFFUSION_MODELS) + ".")
@click.argument("model")
@click.option("--sampler", type=click.Choice(sampler_names()), default=None,
              help="default: the model's own (its folder says which)")  # fmt: skip
@click.option("--steps", type=PositiveInt(10_000), default=None,
              help="sampling steps (default: the model's own)")  # fmt: skip
@click.option("-n", "n", type=PositiveInt(MAX_IMAGES), default=64, show_default=True,
              help="number of images")  # fmt: skip
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--eta", type=FiniteFloat(0, 1), default=0.0, show_default=True, help="DDIM eta")
@click.option("--class-label", type=click.IntRange(min=0), default=None,
              help="one class for every image")  # fmt: skip
@click.option("--guidance-scale", type=FiniteFloat(0, 100), default=None,
              help="classifier-free guidance")  # fmt: skip
@click.option("--classifier-scale", type=FiniteFloat(0, 1000), default=None,
              help="classifier guidance (needs a noise-aware classifier)")  # fmt: skip
@click.option("--classifier", default=None, help="noise-aware classifier: a shipped name or folder")
@click.option("--scale", type=PositiveInt(16), default=4, show_default=True,
              help="grid upscale factor")  # fmt: skip
@click.option("--out", type=ImageFile(), default="grid.png", show_default=True,
              help="image grid to write (.png, .jpg, ...)")  # fmt: skip
def command(
    model, sampler, steps, n, seed, eta, class_label, guidance_scale, classifier_scale,
    classifier, scale, out,
) -> None:  # fmt: skip
    """Sample MODEL (a folder, a training --out folder, or a shipped name) into a grid."""
    from hwaksan.images import save_grid
    from hwaksan.model_folder import load

    pipe = load(model, classifier=classifier)
    num_classes = pipe.num_classes
    if num_classes is None and classifier_scale and pipe.classifier is not None:
        num_classes = pipe.classifier.config.num_classes  # the classes it steers an uncond model to
    if classifier_scale and pipe.classifier is None:
        raise HwaksanError("--classifier-scale needs a classifier: pass --classifier NAME")
    check_steps(pipe, steps)
    check_class_label(pipe, model, class_label, num_classes)
    labels = None
    if class_label is not None:
        labels = [class_label] * n
    elif num_classes is not None:
        labels = [i % num_classes for i in range(n)]  # one row per class
    images = pipe.generate(
        n, sampler=sampler, steps=steps, seed=seed, class_labels=labels,
        guidance_scale=guidance_scale, classifier_scale=classifier_scale, eta=eta, progress=True,
        output_type="pt",
    )  # fmt: skip
    nrow = num_classes if labels is not None and class_label is None else None
    save_grid(images, out, nrow=nrow, scale=scale)
    click.echo(f"wrote {n} samples to {out}")
