"""Names of the models that ship inside the package, and where a name or path points."""

from __future__ import annotations

from pathlib import Path

from hwaksan.errors import HwaksanError

WEIGHTS_DIR = Path(__file__).parent / "weights"

# name -> one line on what it is (README lists the measured scores and the command that made it)
SHIPPED: dict[str, str] = {
    "digits": "class-conditional sklearn digits, 16x16 grayscale, trained with condition dropout",
    "shapes": "unconditional shapes world, one flat shape on black",
    "shapes_cond": "class-conditional shapes world (shape x color), 16 px, condition dropout 0.1",
    "digits_classifier_noisy": "noise-aware digit classifier p(y | x_t, t) for classifier guidance",
    "shapes_ldm": "latent diffusion, 64 px shapes world, on the KL autoencoder's 4x16x16 latents",
    "shapes_t2i": "text-to-image shapes world (1-2 objects, 32 px), prompts via cross-attention",
    "shapes_t2i_64": "text-to-image shapes world (1-2 objects, 64 px), in autoencoder_kl latents",
    "digits_cd": "digits, consistency-distilled from `digits`: 1-2 steps (consistency sampler)",
    "digits_pd": "digits, progressively distilled from `digits` (DDIM-128 halved down to 4 steps)",
    "digits_pd1": "digits, progressively distilled from `digits` down to 1 DDIM step",
    "digits_ct": "digits, consistency-trained from the data alone (no teacher), 1-2 steps",
    "shapes_sr": "super-resolution 32 -> 64 px shapes scenes, in autoencoder_kl latents",
    "shapes_sr16": "super-resolution 16 -> 64 px shapes scenes, in autoencoder_kl latents",
    "shapes_t2i_64_inpaint": "inpainting shapes_t2i_64: mask + masked latents concatenated",
    "shapes_layout": "layout-to-image, 64 px shapes scenes: boxes with labels as tokens",
    "shapes32": "unconditional 32 px shapes scenes of 1-3 objects: the few-step students' teacher",
    "shapes32_pd": "shapes32, progressively distilled (DDIM-128 halved down to 4 steps)",
    "shapes32_pd1": "shapes32, progressively distilled down to 1 DDIM step",
    "shapes32_cd": "shapes32, consistency-distilled: 1-8 steps (consistency sampler)",
    "shapes32_ct": "shapes32's scenes, consistency-trained (no teacher): 1-8 steps",
}


def resolve(name_or_path: str | Path) -> Path:
    """A shipped model's folder for a name, else the given folder (or, for a training run's
    folder, the `model/` inside it); HwaksanError if neither."""
    path = Path(name_or_path)
    if path.is_dir():
        inner = path / "model"
        return inner if (inner / "config.json").exists() else path
    if str(name_or_path) in SHIPPED:
        shipped = WEIGHTS_DIR / str(name_or_path)
        if not (shipped / "config.json").exists():
            raise HwaksanError(
                f"the shipped model {name_or_path!r} is not in this install ({shipped} is missing)"
            )
        return shipped
    if path.exists():
        raise HwaksanError(f"{path} is a file, not a model folder")
    raise HwaksanError(
        f"no model named {str(name_or_path)!r}: not a folder, and the shipped names are "
        + ", ".join(SHIPPED)
    )


# adapters that ship (hwaksan/weights/<name>/, "hwaksan.adapter" folders): name -> what it is
SHIPPED_ADAPTERS: dict[str, str] = {
    "shapes_t2i_64_controlnet_seg": "ControlNet for shapes_t2i_64: object silhouettes (64 px)",
    "shapes_t2i_64_controlnet_edges": "ControlNet for shapes_t2i_64: edge maps (64 px)",
    "shapes_t2i_64_ip_adapter": "IP-Adapter for shapes_t2i_64: an image as the prompt",
    "shapes_t2i_64_watermark_lora": "LoRA for shapes_t2i_64: the watermark look (a LoRA file)",
}


def resolve_adapter(name_or_path: str | Path) -> Path:
    """A shipped adapter's folder for a name, else the given folder (a training run's `model/`
    inside it) or file; a missing one is a one-line HwaksanError naming the shipped adapters."""
    path = Path(name_or_path)
    if path.is_dir():
        inner = path / "model"
        return inner if (inner / "config.json").exists() else path
    shipped = WEIGHTS_DIR / str(name_or_path)
    if str(name_or_path) in SHIPPED_ADAPTERS and shipped.is_dir():
        return shipped
    if path.is_file():
        return path  # a LoRA file
    installed = [name for name in SHIPPED_ADAPTERS if (WEIGHTS_DIR / name).is_dir()]
    raise HwaksanError(
        f"no adapter folder {str(name_or_path)!r}: not a folder, and the shipped adapters are "
        + (", ".join(installed) or "not in this install")
    )
