"""Latent diffusion's data (Rombach et al. 2022): a training set encoded by an autoencoder.

Training images are encoded once (`autoencoder.encode_latents`: the posterior's mode for a KL
autoencoder, the pre-quantization latent for a VQ one) and cached, then multiplied by
`latent_scale` = 1 / std of the latents, measured from the data (LDM sec. 4.3.2; the role of
Stable Diffusion's 0.18215), so the diffusion sees data of unit variance as its schedule assumes.
The recipe trains on them in a `LatentSpace` (`train.space`), which decodes samples as
`autoencoder.decode(z / latent_scale)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from hwaksan.errors import HwaksanError
from hwaksan.nets.autoencoder.base import latent_shape
from hwaksan.train.data import CaptionedImages, TensorItems, TrainingData
from hwaksan.train.space import LatentSpace


def load_frozen_autoencoder(name_or_path: str | Path | nn.Module) -> nn.Module:
    """A trained autoencoder (shipped name or folder, via `load_autoencoder`), frozen, in eval."""
    if isinstance(name_or_path, nn.Module):
        autoencoder = name_or_path
    else:
        from hwaksan.nets.autoencoder import load_autoencoder

        autoencoder = load_autoencoder(name_or_path)
    return autoencoder.eval().requires_grad_(False)


@torch.no_grad()
def encode_images(
    autoencoder: nn.Module, images: torch.Tensor, batch_size: int = 64, progress: bool = True
) -> torch.Tensor:
    """Latents [N, c, h, w] (unscaled) of images [N, C, H, W] in [-1, 1], in batches."""
    chunks = [
        autoencoder.encode_latents(batch)
        for batch in tqdm(images.split(batch_size), desc="encode", disable=not progress)
    ]
    return torch.cat(chunks)


def measure_latent_scale(latents: torch.Tensor) -> float:
    """1 / std of every latent element: the factor that gives the diffusion unit-variance data
    (Rombach et al. 2022, sec. 4.3.2; LDM's `scale_by_std`)."""
    return float(1.0 / latents.double().std())


@dataclass
class LatentData:
    """A training set of scaled latents, and what a latent pipeline must know to decode them."""

    data: TrainingData  # items dict(image=latent * latent_scale, class_id=...)
    autoencoder: nn.Module
    latent_scale: float
    image_shape: tuple[int, int, int]  # the images the latents decode to
    encode_seconds: float

    def pipeline_fields(self) -> dict:
        """The `Pipeline` fields of a latent model (its images are the decoded latents)."""
        return dict(
            autoencoder=self.autoencoder, latent_scale=self.latent_scale,
            image_shape=self.image_shape, sample_shape=self.sample_shape,
        )  # fmt: skip

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.data.channels, self.data.resolution, self.data.resolution)

    @property
    def space(self) -> LatentSpace:
        """The diffusion recipe's space: these latents, decoded through the autoencoder."""
        return LatentSpace(self.autoencoder, self.latent_scale)


def latent_data(
    autoencoder: str | Path | nn.Module,
    data: TrainingData,
    batch_size: int = 64,
    latent_scale: float | None = None,
    progress: bool = True,
) -> LatentData:
    """Encode every image of `data` once and scale the latents (1 / std unless `latent_scale`).

    Captioned data stays captioned: each latent keeps its image's captions."""
    source = None if isinstance(autoencoder, nn.Module) else str(autoencoder)
    autoencoder = load_frozen_autoencoder(autoencoder)
    image_shape = (data.channels, data.resolution, data.resolution)
    shape = latent_shape(autoencoder, image_shape)
    images, class_ids, pairs = _stack(data.dataset)
    start = time.perf_counter()
    try:
        latents = encode_images(autoencoder, images, batch_size, progress)
    except RuntimeError as e:  # e.g. 1-channel digits into a 3-channel encoder
        raise HwaksanError(
            f"the autoencoder cannot encode {data.info.get('name', 'these')} images of shape "
            f"{image_shape}: {str(e).splitlines()[0]}"
        ) from e
    seconds = time.perf_counter() - start
    if tuple(latents.shape[1:]) != shape:
        raise HwaksanError(f"the autoencoder made latents {tuple(latents.shape[1:])}, not {shape}")
    scale = latent_scale or measure_latent_scale(latents)
    info = {**data.info, "autoencoder": source, "encode_seconds": round(seconds, 1)}
    dataset = (
        TensorItems(latents * scale, class_ids)
        if pairs is None
        else CaptionedImages(latents * scale, pairs, getattr(data.dataset, "object_masks", None))
    )
    space = TrainingData(dataset, shape[0], shape[1], data.num_classes, data.class_names, info)
    return LatentData(space, autoencoder, scale, image_shape, seconds)


def _stack(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]] | None]:
    """All images [N, C, H, W] of a dataset of dict items, their class ids (0 without), and
    (image index, caption) pairs when the items have captions (None otherwise)."""
    if isinstance(dataset, TensorItems):
        return dataset.images, dataset.class_ids, None
    if isinstance(dataset, CaptionedImages):  # several captions per image: encode each once
        return dataset.images, torch.zeros(len(dataset.images), dtype=torch.long), dataset.pairs
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item["image"] for item in items])
    class_ids = torch.tensor([int(item.get("class_id", 0)) for item in items])
    if "caption" not in items[0]:
        return images, class_ids, None
    return images, class_ids, [(i, item["caption"]) for i, item in enumerate(items)]
