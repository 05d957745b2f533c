"""`hwaksan generate`: images from a text prompt with a text-to-image model, as a PNG grid."""

from __future__ import annotations

import warnings

import click

from hwaksan.cli.checks import CUT_WARNING, check_prompts, check_steps
from hwaksan.cli.options import SEED, FiniteFloat, ImageFile, PositiveInt
from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import LAYOUT_SCALE, RELATIONS
from hwaksan.sampling.registry import sampler_names

MAX_IMAGES = 1024  # one grid


@click.command("generate", short_help="Images from text prompts with a text-to-image model.")
@click.argument("prompts", nargs=-1, required=True)
@click.option("--model", default="shapes_t2i", show_default=True, help="a folder or shipped name")
@click.option("-n", "n", type=PositiveInt(256), default=8, show_default=True,
              help="images per prompt")  # fmt: skip
@click.option("--negative-prompt", default=None, help="what to steer away from (instead of '')")
@click.option("--guidance-scale", type=FiniteFloat(0, 100), default=4.0, show_default=True,
              help="classifier-free guidance (1 = none)")  # fmt: skip
@click.option("--sampler", type=click.Choice(sampler_names()), default=None,
              help="default: the model's own (ddim for every shipped model)")  # fmt: skip
@click.option(
    "--steps", type=PositiveInt(10_000), default=None, help="sampling steps (default: the model's)"
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--relation",
    "relations",
    type=(str, str, str),
    multiple=True,
    metavar="A REL B",
    help="steer a relation by cross-attention, e.g. --relation "
    "'red circle' 'left of' 'blue square' (REL: left of, right of, above, below)",
)
@click.option("--layout-scale", type=FiniteFloat(0, 1000), default=None,
              help="strength of --relation's layout guidance; default: the model's own "
              f"({LAYOUT_SCALE:g} unless the model stores another, 0 for shapes_t2i)")  # fmt: skip
@click.option("--lora", "loras", multiple=True,
              help="a LoRA file or folder to load first (repeatable), e.g. "
              "shapes_t2i_64_watermark_lora")  # fmt: skip
@click.option("--lora-scale", type=FiniteFloat(-100, 100), default=None,
              help="the LoRAs' scale (0: the base model; default 1)")  # fmt: skip
@click.option("--scale", type=PositiveInt(16), default=4, show_default=True,
              help="grid upscale factor")  # fmt: skip
@click.option("--out", type=ImageFile(), default="grid.png", show_default=True,
              help="image grid to write (.png, .jpg, ...)")  # fmt: skip
def command(
    prompts, model, n, negative_prompt, guidance_scale, sampler, steps, seed, relations,
    layout_scale, loras, lora_scale, scale, out,
):  # fmt: skip
    """Generate N images for each PROMPT (one grid row per prompt), e.g.

    hwaksan generate "a red circle to the left of a blue square" -n 8 --out grid.png

    --relation names two phrases of every PROMPT and how they sit; layout guidance then moves
    their cross-attention to match while the layout forms.
    """
    from hwaksan.images import save_grid
    from hwaksan.model_folder import load

    if n * len(prompts) > MAX_IMAGES:
        raise HwaksanError(f"{n} x {len(prompts)} prompts is more than {MAX_IMAGES} images a grid")
    pipe = load(model)
    if pipe.text_encoder is None:
        raise HwaksanError(f"{model} is not a text-to-image model (it has no text encoder)")
    _load_loras(pipe, loras, lora_scale)
    for note in _check(pipe, prompts, negative_prompt, relations, steps):
        click.echo(note, err=True)
    if relations and layout_scale is None and not pipe.layout_scale:
        click.echo(f"note: {model} runs without layout guidance by default (it was measured to "
                   "hurt this model); --layout-scale 1 turns it on")  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CUT_WARNING)  # said above, in one line
        images = pipe.generate(
            n * len(prompts), sampler=sampler, steps=steps, seed=seed,
            prompt=[p for p in prompts for _ in range(n)], negative_prompt=negative_prompt,
            guidance_scale=guidance_scale, progress=True, output_type="pt",
            relations=list(relations) or None, layout_scale=layout_scale, lora_scale=lora_scale,
        )  # fmt: skip
    save_grid(images, out, nrow=n, scale=scale)
    click.echo(f"wrote {len(images)} images ({len(prompts)} prompt(s) x {n}) to {out}")


def _load_loras(pipe, loras, lora_scale) -> None:
    """Each --lora (a file, a folder or a shipped LoRA's name) onto the model."""
    if lora_scale is not None and not loras:
        raise HwaksanError("--lora-scale needs a --lora to scale")
    for lora in loras:
        pipe.load_lora_weights(lora)


def _check(pipe, prompts, negative_prompt, relations, steps) -> list[str]:
    """The values that need the model, checked before sampling; notes for prompts it will cut."""
    check_steps(pipe, steps)
    notes = check_prompts(pipe, list(prompts))
    notes += check_prompts(pipe, [negative_prompt] if negative_prompt else [], "negative prompt")
    for a, rel, b in relations:
        if rel not in RELATIONS or not a.strip() or not b.strip():
            raise HwaksanError(f"--relation {a!r} {rel!r} {b!r}: REL must be one of "
                               f"{', '.join(RELATIONS)}, with a phrase on each side")  # fmt: skip
    return notes
