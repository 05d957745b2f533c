"""`hwaksan generate`: images from a text prompt with a text-to-image model, as a PNG grid."""

from __future__ import annotations

import warnings

import click

from hwaksan.cli.checks import CUT_WARNING, check_prompts, check_steps
from hwaksan.cli.options import (
    SEED,
    FiniteFloat,
    ImageFile,
    InputImage,
    PositiveInt,
)
from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import LAYOUT_SCALE, RELATIONS
from hwaksan.sampling.registry import sampler_names

MAX_IMAGES = 1024  # one grid


@click.command("generate", short_help="Images from text prompts with a text-to-image model.")
@click.argument("prompts", nargs=-1)
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
@click.option("--controlnet", default=None,
              help="a ControlNet folder or shipped name that steers the model "
              "(with --control-image)")  # fmt: skip
@click.option("--control-image", type=InputImage(), default=None,
              help="the ControlNet's control map, an image of the model's size "
              "(one for every image)")  # fmt: skip
@click.option("--controlnet-conditioning-scale", type=FiniteFloat(0, 10), default=1.0,
              show_default=True,
              help="strength of the ControlNet (0 = the model alone)")  # fmt: skip
@click.option("--ip-adapter", default=None, metavar="PATH",
              help="an IP-Adapter folder: prompt with --ip-adapter-image too")  # fmt: skip
@click.option("--ip-adapter-image", type=InputImage(), default=None,
              help="the image prompt (any size; RGB) for --ip-adapter")  # fmt: skip
@click.option("--ip-adapter-scale", type=FiniteFloat(0, 10), default=1.0, show_default=True,
              help="weight of the image prompt (0: the text alone)")  # fmt: skip
@click.option("--image", type=InputImage(), default=None,
              help="start from this image (img2img, SDEdit) or, with --mask, inpaint it; its "
              "size must be the model's")  # fmt: skip
@click.option(
    "--mask",
    type=InputImage("L"),
    default=None,
    help="inpaint where the mask is white, keep the rest of --image exactly",
)
@click.option("--strength", type=FiniteFloat(0, 1), default=None,
              help="img2img: how much of the sampling runs (0 keeps --image, 1 ignores it; "
              "default 0.8)")  # fmt: skip
@click.option(
    "--invert",
    is_flag=True,
    help="img2img from --image's DDIM inversion (strength 1 reconstructs it)",
)
@click.option(
    "--jump-length",
    type=PositiveInt(1000),
    default=None,
    help="inpainting by RePaint: go back and re-run every this many steps (default 5)",
)
@click.option(
    "--jump-n-sample",
    type=PositiveInt(100),
    default=None,
    help="inpainting by RePaint: passes over each jump (default 2; 1: no resampling)",
)
@click.option(
    "--layout",
    "boxes",
    type=(str, *[FiniteFloat(0, 1)] * 4),
    multiple=True,
    metavar="LABEL X0 Y0 X1 Y1",
    help="a layout-to-image model's object: its label and "
    "box in image fractions, e.g. --layout 'red circle' 0.1 0.1 0.4 0.4 (repeatable)",
)
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
    layout_scale, controlnet, control_image, controlnet_conditioning_scale, ip_adapter,
    ip_adapter_image, ip_adapter_scale, image, mask, strength, invert, jump_length,
    jump_n_sample, boxes, loras, lora_scale, scale, out,
):  # fmt: skip
    """Generate N images for each PROMPT (one grid row per prompt), e.g.

    hwaksan generate "a red circle to the left of a blue square" -n 8 --out grid.png

    hwaksan generate "a blue square" --image in.png --strength 0.6 --out edit.png

    hwaksan generate "a green triangle" --image in.png --mask mask.png --out inpainted.png

    hwaksan generate --model DIR --layout "red circle" 0.1 0.1 0.4 0.4 --out layout.png

    --relation names two phrases of every PROMPT and how they sit; layout guidance then moves
    their cross-attention to match while the layout forms. --controlnet with --control-image
    steers where the objects go by a control map (hwaksan train-controlnet makes one).
    --ip-adapter with --ip-adapter-image prompts with a picture too (IP-Adapter; "" as PROMPT:
    the picture alone).
    """
    from hwaksan.images import save_grid
    from hwaksan.model_folder import load

    if (controlnet is None) != (control_image is None):
        raise HwaksanError("--controlnet and --control-image go together: give both or neither")
    if n * len(prompts) > MAX_IMAGES:
        raise HwaksanError(f"{n} x {len(prompts)} prompts is more than {MAX_IMAGES} images a grid")
    pipe = load(model)
    if boxes or getattr(pipe, "layout_encoder", None) is not None:
        layout = [(label, box) for label, *box in boxes]
        return _layout(pipe, model, prompts, layout, dict(n=n, sampler=sampler, steps=steps,
                       seed=seed, guidance_scale=guidance_scale), scale, out)  # fmt: skip
    if not prompts:
        raise HwaksanError("give at least one PROMPT")
    if pipe.text_encoder is None:
        raise HwaksanError(f"{model} is not a text-to-image model (it has no text encoder)")
    _load_loras(pipe, loras, lora_scale)
    control = _control(pipe, controlnet, control_image, controlnet_conditioning_scale)
    image_prompt = _ip_adapter(pipe, ip_adapter, ip_adapter_image, ip_adapter_scale)
    for note in _check(pipe, prompts, negative_prompt, relations, steps, bool(image_prompt)):
        click.echo(note, err=True)
    images_in = _image_inputs(image, mask, strength, invert, jump_length, jump_n_sample)
    if relations and layout_scale is None and not pipe.layout_scale:
        click.echo(f"note: {model} runs without layout guidance by default (it was measured to "
                   "hurt this model); --layout-scale 1 turns it on")  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CUT_WARNING)  # said above, in one line
        images = pipe.generate(
            n * len(prompts), sampler=sampler, steps=steps, seed=seed,
            prompt=[p for p in prompts for _ in range(n)], negative_prompt=negative_prompt,
            guidance_scale=guidance_scale, progress=True, output_type="pt",
            relations=list(relations) or None, layout_scale=layout_scale, **control,
            **image_prompt, **images_in, lora_scale=lora_scale,
        )  # fmt: skip
    save_grid(images, out, nrow=n, scale=scale)
    click.echo(f"wrote {len(images)} images ({len(prompts)} prompt(s) x {n}) to {out}")


def _load_loras(pipe, loras, lora_scale) -> None:
    """Each --lora (a file, a folder or a shipped LoRA's name) onto the model."""
    if lora_scale is not None and not loras:
        raise HwaksanError("--lora-scale needs a --lora to scale")
    for lora in loras:
        pipe.load_lora_weights(lora)


def _layout(pipe, model: str, prompts, layout: list, args: dict, scale: int, out: str) -> None:
    """A layout-to-image model's grid: N images of the --layout boxes."""
    from hwaksan.images import save_grid

    if getattr(pipe, "layout_encoder", None) is None:
        raise HwaksanError(f"--layout needs a layout-to-image model; {model} is not one")
    if prompts:
        raise HwaksanError(f"{model} is a layout-to-image model: it reads --layout, not PROMPTs")
    check_steps(pipe, args["steps"])
    images = pipe.generate(args.pop("n"), layout=layout, progress=True, output_type="pt", **args)
    save_grid(images, out, nrow=len(images), scale=scale)
    click.echo(f"wrote {len(images)} images of a {len(layout)}-object layout to {out}")


def _check(pipe, prompts, negative_prompt, relations, steps, image_prompt=False) -> list[str]:
    """The values that need the model, checked before sampling; notes for prompts it will cut
    (an empty prompt only beside an image prompt)."""
    check_steps(pipe, steps)
    notes = check_prompts(pipe, list(prompts), allow_empty=image_prompt)
    notes += check_prompts(pipe, [negative_prompt] if negative_prompt else [], "negative prompt")
    for a, rel, b in relations:
        if rel not in RELATIONS or not a.strip() or not b.strip():
            raise HwaksanError(f"--relation {a!r} {rel!r} {b!r}: REL must be one of "
                               f"{', '.join(RELATIONS)}, with a phrase on each side")  # fmt: skip
    return notes


def _control(pipe, controlnet, control_image, conditioning_scale) -> dict:
    """The ControlNet attached, and generate's control inputs (none without --controlnet)."""
    if controlnet is None:
        return {}
    pipe.load_controlnet(controlnet)
    return {"control_image": control_image, "controlnet_conditioning_scale": conditioning_scale}


def _ip_adapter(pipe, path, image, scale) -> dict:
    """Load --ip-adapter onto the pipeline: generate's inputs (--ip-adapter-image, read)."""
    if (path is None) != (image is None):
        raise HwaksanError("--ip-adapter and --ip-adapter-image go together: give both or neither")
    if path is None:
        return {}
    pipe.load_ip_adapter(path, scale=scale)
    return {"ip_adapter_image": image}


def _image_inputs(image, mask, strength, invert, jump_length, jump_n_sample) -> dict:
    """`generate`'s image inputs from the options, each only with what it needs."""
    needs = {"--mask": mask, "--strength": strength, "--invert": invert or None}
    given = [name for name, value in needs.items() if value is not None]
    if image is None and given:
        raise HwaksanError(f"{given[0]} needs --image")
    jumps = {"--jump-length": jump_length, "--jump-n-sample": jump_n_sample}
    if mask is None and any(v is not None for v in jumps.values()):
        raise HwaksanError("--jump-length and --jump-n-sample need --mask (RePaint inpainting)")
    if mask is not None and (strength is not None or invert):
        raise HwaksanError("--strength and --invert are img2img's; inpainting (--mask) runs all")
    inputs = dict(image=image, mask_image=mask, strength=strength, invert=invert or None,
                  jump_length=jump_length, jump_n_sample=jump_n_sample)  # fmt: skip
    return {k: v for k, v in inputs.items() if v is not None}
