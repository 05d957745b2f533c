"""`hwaksan eval`: score a folder of generated images against real data, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hwaksan.cli.options import SEED, AliasOption, BoundedInt, PositiveInt
from hwaksan.errors import HwaksanError

DEFAULT_FEATURE = {"shapes": "shapes", "digits": "digits"}  # a folder of real images: "shapes"
SHAPES_RESOLUTIONS = (16, 32, 64)


def _image_size(folder: str) -> int:
    """The shorter side of the folder's first image (the resolution to compare at)."""
    from PIL import Image

    from hwaksan.data.folder import find_images

    first = find_images(Path(folder))[0]
    try:
        with Image.open(first) as image:
            return min(image.size)
    except OSError as e:
        raise HwaksanError(f"cannot read image {first}: {e}") from e


def _load_generated(source: str, resolution: int):
    """The images to score: (images [N, 3, R, R], captions or None, labels or None).

    Today `source` is a folder; this is the one place a saved model name will plug in.
    """
    from hwaksan.data.folder import ImageFolder

    folder = ImageFolder(source, resolution)
    captions = folder.captions if all(folder.captions) else None
    return folder.images(), captions, folder.labels if folder.has_labels else None


def _format_table(header: str, result: dict) -> str:
    """The result as aligned `name  value` lines under a header line."""
    lines = [header]
    for name, value in result.items():
        if name == "kid_std":
            continue
        if name == "kid_mean":
            name, value = "kid", f"{value:.5f} +- {result['kid_std']:.5f}"
        elif isinstance(value, float):
            value = f"{value:.4f}"
        lines.append(f"  {name:<20} {value}")
    return "\n".join(lines)


@click.command("eval", short_help="Score a folder of generated images against real data.")
@click.argument("source")
@click.option(
    "--data",
    default="shapes",
    show_default=True,
    help="the real data: 'shapes', 'digits' or a folder of real images",
)
@click.option("-n", "--n", "n_real", cls=AliasOption, type=BoundedInt(2, 100_000), default=1000,
              show_default=True, help="real images to compare with")  # fmt: skip
@click.option(
    "--feature",
    default=None,
    help="feature net: shapes | digits | inception (default: the data set's own)",
)
@click.option(
    "--resolution",
    type=PositiveInt(1024),
    default=None,
    help="compare at this size (default: the first generated image's size)",
)
@click.option(
    "--min-objects",
    type=BoundedInt(1, 9),
    default=1,
    show_default=True,
    help="shapes: objects per scene",
)
@click.option(
    "--max-objects",
    type=BoundedInt(1, 9),
    default=3,
    show_default=True,
    help="shapes: objects per scene",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the real sample")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def command(source, data, n_real, feature, resolution, min_objects, max_objects, seed, as_json):
    """Score the images in SOURCE (a folder) against real data: Frechet distance, KID, and the
    data set's checks (shapes: validity and coverage; digits: predicted-class histogram, and
    class accuracy when metadata.jsonl gives each file a "label")."""
    from hwaksan.eval.report import evaluate, reference_images

    if min_objects > max_objects:
        raise HwaksanError(f"--min-objects {min_objects} is more than --max-objects {max_objects}")
    resolution = resolution or _image_size(source)
    if data == "shapes" and resolution not in SHAPES_RESOLUTIONS:
        raise HwaksanError(f"shapes images must be {SHAPES_RESOLUTIONS} pixels, got {resolution}")
    shapes_options = dict(min_objects=min_objects, max_objects=max_objects)
    if data != "shapes":
        shapes_options = {}
    feature = feature or DEFAULT_FEATURE.get(data, "shapes")
    images, captions, labels = _load_generated(source, resolution)
    real = reference_images(data, n_real, seed, resolution, **shapes_options)
    result = evaluate(images, real, data, feature, captions, labels, **shapes_options)
    meta = dict(
        source=source,
        data=data,
        n_generated=len(images),
        n_real=len(real),
        feature=feature,
        resolution=resolution,
    )
    if len(images) < 500:
        meta["note"] = (
            f"only {len(images)} generated images: Frechet distance is biased upward at small N;"
            " compare runs at equal N, ideally >= 1,000"
        )
    if as_json:
        nan_as_null = {k: None if v != v else v for k, v in result.items()}  # NaN: no such claim
        click.echo(json.dumps({**meta, **nan_as_null}, indent=2))
    else:
        header = (
            f"{len(images)} images in {source} vs {len(real)} real ({data}), "
            f"{resolution}px, features: {feature}"
        )
        click.echo(_format_table(header, result))
        if "note" in meta:
            click.echo(f"note: {meta['note']}")
