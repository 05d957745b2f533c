"""`hwaksan sample`: a PNG grid of samples from a saved model (a folder or a shipped name)."""

from __future__ import annotations

import click

from hwaksan.errors import HwaksanError


@click.command("sample")
@click.argument("model")
@click.option("--sampler", default=None, help="ddim, ddpm, dpmpp_2m, euler, heun")
@click.option("--steps", type=int, default=None, help="sampling steps (default: the model's)")
@click.option("-n", "n", type=int, default=64, show_default=True, help="number of images")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eta", type=float, default=0.0, show_default=True, help="DDIM eta")
@click.option("--class-label", type=int, default=None, help="one class for every image")
@click.option("--guidance-scale", type=float, default=None, help="classifier-free guidance")
@click.option("--classifier-scale", type=float, default=None,
              help="classifier guidance (needs a noise-aware classifier)")  # fmt: skip
@click.option("--classifier", default=None, help="noise-aware classifier: a shipped name or folder")
@click.option("--scale", type=int, default=4, show_default=True, help="grid upscale factor")
@click.option("--out", default="grid.png", show_default=True, help="PNG grid to write")
def command(
    model, sampler, steps, n, seed, eta, class_label, guidance_scale, classifier_scale,
    classifier, scale, out,
) -> None:  # fmt: skip
    """Sample MODEL (a folder, a training --out folder, or a shipped name) into a grid."""
    from hwaksan.images import save_grid
    from hwaksan.model_folder import load

    if n < 1:
        raise HwaksanError("-n must be at least 1")
    pipe = load(model, classifier=classifier)
    num_classes = pipe.num_classes
    if num_classes is None and classifier_scale and pipe.classifier is not None:
        num_classes = pipe.classifier.config.num_classes  # the classes it steers an uncond model to
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
