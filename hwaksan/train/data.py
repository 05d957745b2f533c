"""The training sets the command line knows: the shapes world, sklearn's digits, an image folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from hwaksan.errors import HwaksanError


@dataclass
class TrainingData:
    """A dataset of dict(image=[C, R, R] in [-1, 1], class_id=int?) and what a model must know."""

    dataset: Dataset
    channels: int
    resolution: int
    num_classes: int | None = None  # set when the data has labels
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)  # JSON saved beside the model


class CachedItems(Dataset):
    """Keeps the `keys` of each item after its first read (procedural data renders once)."""

    def __init__(self, dataset: Dataset, keys: tuple[str, ...] = ("image", "class_id")) -> None:
        self.dataset, self.keys, self.cache = dataset, keys, {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        if i not in self.cache:
            item = self.dataset[i]
            self.cache[i] = {k: item[k] for k in self.keys if k in item}
        return self.cache[i]


class TensorItems(Dataset):
    """Images [N, C, H, W] and class ids [N] held in memory, as dict items."""

    def __init__(self, images: torch.Tensor, class_ids: torch.Tensor) -> None:
        self.images, self.class_ids = images, class_ids

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "class_id": int(self.class_ids[i])}


class CaptionedImages(Dataset):
    """Images [N, C, H, W] in memory and (image index, caption) pairs: dict(image=, caption=,
    index=). `object_masks` (`train.grounding.ObjectMasks`, optional) says where each image's
    objects are, for the token grounding loss; it follows the images into latent space."""

    def __init__(
        self, images: torch.Tensor, pairs: Sequence[tuple[int, str]], object_masks=None
    ) -> None:
        self.images, self.pairs, self.object_masks = images, list(pairs), object_masks

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        index, caption = self.pairs[i]
        return {"image": self.images[index], "caption": caption, "index": index}

    @property
    def captions(self) -> list[str]:
        return [c for _, c in self.pairs]


def training_data_of(record: dict, resolution: int) -> TrainingData:
    """The data a model learned, rebuilt from its folder's `data` record: the same shapes scenes
    (count, seed, 1 to max_objects objects) or digits, at `resolution`."""
    name = record.get("name")
    if name is None:
        raise HwaksanError("the model's folder does not say what data it learned ('data.name')")
    if name != "shapes" or "shapes_config" not in record:
        return training_data(name, resolution)
    from hwaksan.data.shapes import ShapesConfig

    wanted = ShapesConfig.from_dict(record["shapes_config"])
    data = shapes_data(resolution, record.get("length", 20_000), record.get("seed", 0),
                       max_objects=wanted.max_objects)  # fmt: skip
    made = ShapesConfig.from_dict(data.info["shapes_config"])
    if made != wanted:
        raise HwaksanError(f"cannot rebuild the model's shapes data {wanted} (the shapes data "
                           f"built here is {made})")  # fmt: skip
    return data


def shapes_data(
    resolution: int = 32, length: int = 20_000, seed: int = 0, max_objects: int = 1
) -> TrainingData:
    """Flat shapes on black (base shapes and colors), one per image, or 1 to `max_objects` (then
    unlabelled: a class is one object's shape and color): `length` seeded scenes rendered up
    front in one vectorized batch (the same images as `ShapesDataset(config, length, seed)`)."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=resolution, min_objects=1, max_objects=max_objects)
    images, scenes = shapes.render_batch(length, seed=seed, config=config)
    info = {"name": "shapes", "shapes_config": config.to_dict(), "length": length, "seed": seed}
    if max_objects > 1:
        return TrainingData(TensorItems(images, torch.zeros(length, dtype=torch.long)), 3,
                            resolution, None, None, info)  # fmt: skip
    dataset = TensorItems(images, torch.tensor([scene.class_id for scene in scenes]))
    n = shapes.num_classes(config)
    names = [" ".join(reversed(shapes.class_name(i, config))) for i in range(n)]  # "red circle"
    return TrainingData(dataset, 3, resolution, n, names, info)


def digits_data(resolution: int = 16) -> TrainingData:
    """sklearn's digits (the 1,497-image train split), upscaled to `resolution`."""
    from hwaksan.data.digits import DIGIT_WORDS, DigitsDataset

    dataset = DigitsDataset(split="train", resolution=resolution)
    info = {"name": "digits", "split": "train", "resolution": resolution}
    return TrainingData(dataset, 1, resolution, 10, list(DIGIT_WORDS), info)


def folder_data(path: str | Path, resolution: int = 32) -> TrainingData:
    """Every image under `path` (labels from metadata.jsonl if every image has one)."""
    from hwaksan.data.folder import ImageFolder

    dataset = ImageFolder(path, resolution)
    num_classes = None
    if dataset.has_labels:
        num_classes = max(dataset.labels) + 1
    info = {"name": "folder", "path": str(Path(path).resolve()), "resolution": resolution}
    return TrainingData(CachedItems(dataset), 3, resolution, num_classes, None, info)


def training_data(
    data: str, resolution: int | None = None, max_objects: int = 1, scenes: int | None = None
) -> TrainingData:
    """The shapes world (32 px default; `scenes` of 1 to `max_objects` objects, 20,000 unless
    told), digits (16 px default) or an image folder (32 px)."""
    if data == "shapes":
        return shapes_data(resolution or 32, scenes or 20_000, max_objects=max_objects)
    if max_objects != 1:
        raise HwaksanError(f"--objects goes with --data shapes, not {data!r}")
    if data == "digits":
        return digits_data(resolution or 16)
    if not Path(data).exists():
        raise HwaksanError(f"--data {data!r} is neither shapes, digits nor an existing folder")
    return folder_data(data, resolution or 32)
