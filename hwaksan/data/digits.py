"""sklearn's 1,797 real handwritten 8x8 digits as images in [-1, 1], with a fixed split.

The set ships inside scikit-learn (`load_digits`, values 0..16), so nothing is downloaded.
Everyone uses the same seeded, class-stratified split: 1,497 train / 300 held out (30 per digit).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hwaksan.errors import HwaksanError

NUM_CLASSES = 10
HELDOUT_PER_CLASS = 30  # 10 x 30 = 300 held-out digits
SPLIT_SEED = 0
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _load_raw() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float32 [N, 1, 8, 8] in [-1, 1] and int64 labels [N]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise HwaksanError(
            "the digits data set needs scikit-learn: pip install scikit-learn "
            "(or pip install 'hwaksan[digits]')"
        ) from e
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)  # [N, 8, 8], values 0..16
    images = (images / 8.0 - 1.0).unsqueeze(1)  # [N, 1, 8, 8] in [-1, 1]
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


def split_indices(labels: torch.Tensor, split: str) -> torch.Tensor:
    """Indices of `split` ("train", "heldout" or "all"): 30 held-out digits per class, seeded."""
    if split == "all":
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    heldout = []
    for digit in range(NUM_CLASSES):
        members = torch.nonzero(labels == digit).flatten()
        order = torch.randperm(len(members), generator=generator)
        heldout.append(members[order[:HELDOUT_PER_CLASS]])
    is_heldout = torch.zeros(len(labels), dtype=torch.bool)
    is_heldout[torch.cat(heldout)] = True
    if split == "heldout":
        return torch.nonzero(is_heldout).flatten()
    if split == "train":
        return torch.nonzero(~is_heldout).flatten()
    raise HwaksanError(f"unknown digits split {split!r}: use 'train', 'heldout' or 'all'")


def to_resolution(images: torch.Tensor, resolution: int, upscale: str = "bilinear") -> torch.Tensor:
    """[N, 1, 8, 8] digits at `resolution`: bilinear resize, or "pad" with background (-1)."""
    size = images.shape[-1]
    if resolution == size:
        return images
    if upscale == "bilinear":
        return F.interpolate(
            images,
            size=(resolution, resolution),
            mode="bilinear",
            align_corners=False,
            antialias=resolution < size,
        ).clamp(-1, 1)
    if upscale == "pad":
        if resolution < size:
            raise HwaksanError(f"cannot pad 8x8 digits to {resolution}x{resolution}")
        before = (resolution - size) // 2
        after = resolution - size - before
        return F.pad(images, (before, after, before, after), value=-1.0)
    raise HwaksanError(f"unknown digits upscale {upscale!r}: use 'bilinear' or 'pad'")


def load_digits_tensors(
    split: str = "train", resolution: int = 8, upscale: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, R, R] in [-1, 1], labels [N]) for one split of sklearn's digits."""
    images, labels = _load_raw()
    keep = split_indices(labels, split)
    return to_resolution(images[keep], resolution, upscale), labels[keep]


class DigitsDataset(Dataset):
    """sklearn's digits; item = dict(image=[1, R, R] in [-1, 1], class_id=int, caption=str).

    `resolution` 8 (native) or larger (16 is what the digits models use); `upscale` is
    "bilinear" (resize) or "pad" (the 8x8 digit centered on background).
    """

    def __init__(self, split: str = "train", resolution: int = 8, upscale: str = "bilinear"):
        self.images, self.labels = load_digits_tensors(split, resolution, upscale)
        self.split, self.resolution = split, resolution

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        label = int(self.labels[i])
        return dict(image=self.images[i], class_id=label, caption=f"digit {DIGIT_WORDS[label]}")
