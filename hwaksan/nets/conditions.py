"""Images a denoiser reads by concatenation (`UNet(..., concat=)`, `UNetConfig.concat_channels`):
a low-resolution image (super-resolution: SR3, Saharia et al. 2021; LDM-SR, Rombach et al. 2022,
sec. 4.4) or a mask and the masked image's latents (inpainting: Stable Diffusion's 9-channel
inpainting U-Net). Shared by the training recipe (`train.concat`) and `generate`
(`pipeline.concat`); a model folder names its condition in `config.json` ("condition").

Super-resolution's low-res input is noise-augmented (Ho et al. 2022, "Cascaded Diffusion Models",
sec. 4.1: conditioning augmentation), its level given to the net as a class label, as diffusers'
`StableDiffusionUpscalePipeline` passes `noise_level`: level k of `noise_levels` noises the
low-res image to the VP level sigma = max_noise * k / (noise_levels - 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hwaksan.errors import HwaksanError

KINDS = ("super_resolution", "inpainting")


def super_resolution(low_res: int, noise_levels: int = 10, max_noise: float = 0.5,
                     noise_level: int = 0) -> dict:  # fmt: skip
    """A super-resolution model's condition: low-res images of `low_res` px, augmented at one of
    `noise_levels` levels up to VP sigma `max_noise`; `noise_level` is what sampling uses."""
    return dict(kind="super_resolution", low_res=low_res, noise_levels=noise_levels,
                max_noise=max_noise, noise_level=noise_level)  # fmt: skip


def inpainting() -> dict:
    """A dedicated inpainting model's condition: the mask and the masked latents."""
    return dict(kind="inpainting")


def concat_channels(condition: dict, image_channels: int, sample_shape: tuple[int, int, int]):
    """How many input channels `condition` adds to a denoiser of samples `sample_shape`."""
    if condition["kind"] == "inpainting":
        return 1 + sample_shape[0]  # the mask + the masked sample
    factor = max(1, condition["low_res"] // sample_shape[1])
    return image_channels * factor**2


def is_condition(condition: object) -> bool:
    """Whether `condition` is null or a condition this code knows, with fields in range."""
    if condition is None:
        return True
    if not isinstance(condition, dict) or condition.get("kind") not in KINDS:
        return False
    if condition["kind"] == "inpainting":
        return True
    ints = [condition.get(k) for k in ("low_res", "noise_levels", "noise_level")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        return False
    low_res, levels, level = ints
    max_noise = condition.get("max_noise")
    number = isinstance(max_noise, (int, float)) and not isinstance(max_noise, bool)
    return low_res >= 1 and levels >= 1 and 0 <= level < levels and number and 0 <= max_noise < 1


def augment_low_res(low: torch.Tensor, level: torch.Tensor, condition: dict,
                    noise: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Low-res images [B, C, r, r] noised to their levels `level` [B] (conditioning
    augmentation): alpha x + sigma noise with sigma = max_noise * level / (levels - 1)."""
    steps = max(condition["noise_levels"] - 1, 1)
    sigma = (condition["max_noise"] * level.to(low.dtype) / steps).reshape(-1, 1, 1, 1)
    return (1 - sigma**2).sqrt() * low + sigma * noise


def low_res_concat(low: torch.Tensor, side: int) -> torch.Tensor:
    """The denoiser's extra input from low-res images [B, C, r, r] for samples of `side` px:
    bicubic upsampling when r < side (SR3), space-to-depth when r >= side (a 32 px image beside
    16x16 latents: [B, 4C, 16, 16]), keeping every low-res pixel."""
    r = low.shape[-1]
    if r < side:
        return F.interpolate(low, size=(side, side), mode="bicubic", align_corners=False)
    if r % side:
        raise HwaksanError(f"low-res images of {r} px do not fold onto {side}x{side} samples")
    return F.pixel_unshuffle(low, r // side)  # (B, C (r / side)^2, side, side)


def inpainting_concat(sample: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[B, 1 + C, h, w]: the mask (1: repaint) and the sample (image or latents) zeroed there
    (Stable Diffusion's inpainting input, the masking done on the latents, so no masked pixel
    leaks: a latent cell is masked where any of its pixels is)."""
    return torch.cat([1 - keep, sample * keep], dim=1)
