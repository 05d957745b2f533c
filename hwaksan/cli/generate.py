"""`hwaksan generate`: images from a text prompt with a text-to-image model, as a PNG grid."""

from __future__ import annotations

import click

from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import LAYOUT_SCALE


@click.command("generate")
@click.argument("prompts", nargs=-1, required=True)
@click.option("--model", default="shapes_t2i", show_default=True, help="a folder or shipped name")
@click.option("-n", "n", type=int, default=8, show_default=True, help="images per prompt")
@click.option("--negative-prompt", default=None, help="what to steer away from (instead of '')")
@click.option("--guidance-scale", type=float, default=4.0, show_default=True,
              help="classifier-free guidance (1 = none)")  # fmt: skip
@click.option("--sampler", default=None, help="ddim, ddpm, dpmpp_2m, euler, heun")
@click.option("--steps", type=int, default=None, help="sampling steps (default: the model's)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--relation",
    "relations",
    type=(str, str, str),
    multiple=True,
    metavar="A REL B",
    help="steer a relation by cross-attention, e.g. --relation "
    "'red circle' 'left of' 'blue square' (REL: left of, right of, above, below)",
)
@click.option("--layout-scale", type=float, default=None,
              help="strength of --relation's layout guidance; default: the model's own "
              f"({LAYOUT_SCALE:g} unless the model stores another, 0 for shapes_t2i)")  # fmt: skip
@click.option("--scale", type=int, default=4, show_default=True, help="grid upscale factor")
@click.option("--out", default="grid.png", show_default=True, help="PNG grid to write")
def command(
    prompts, model, n, negative_prompt, guidance_scale, sampler, steps, seed, relations,
    layout_scale, scale, out,
):  # fmt: skip
    """Generate N images for each PROMPT (one grid row per prompt), e.g.

    hwaksan generate "a red circle to the left of a blue square" -n 8 --out grid.png

    --relation names two phrases of every PROMPT and how they sit; layout guidance then moves
    their cross-attention to match while the layout forms.
    """
    from hwaksan.images import save_grid
    from hwaksan.model_folder import load

    if n < 1:
        raise HwaksanError("-n must be at least 1")
    pipe = load(model)
    if pipe.text_encoder is None:
        raise HwaksanError(f"{model} is not a text-to-image model (it has no text encoder)")
    if relations and layout_scale is None and not pipe.layout_scale:
        click.echo(f"note: {model} runs without layout guidance by default (it was measured to "
                   "hurt this model); --layout-scale 1 turns it on")  # fmt: skip
    images = pipe.generate(
        n * len(prompts), sampler=sampler, steps=steps, seed=seed,
        prompt=[p for p in prompts for _ in range(n)], negative_prompt=negative_prompt,
        guidance_scale=guidance_scale, progress=True, output_type="pt",
        relations=list(relations) or None, layout_scale=layout_scale,
    )  # fmt: skip
    save_grid(images, out, nrow=n, scale=scale)
    click.echo(f"wrote {len(images)} images ({len(prompts)} prompt(s) x {n}) to {out}")
