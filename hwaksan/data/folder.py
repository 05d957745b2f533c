"""A folder of images (PNG, JPEG, WebP, BMP; searched recursively) as a torch Dataset.

Captions and labels come from `metadata.jsonl` files, the Hugging Face imagefolder convention:
one JSON object per line, `{"file_name": "a.png", "text": "a red circle", "label": 3}`, with
`file_name` relative to the metadata file's folder. Every image is decoded once at construction,
so a corrupt file is reported up front (or skipped) and never halfway through an epoch.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from hwaksan.errors import HwaksanError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METADATA_NAME = "metadata.jsonl"


def _resize_center_crop(image: Image.Image, resolution: int) -> Image.Image:
    """Resize the shorter side to `resolution` (bicubic), then crop the center square."""
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    if size != image.size:
        image = image.resize(size, Image.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode as 8-bit RGB, scaled rather than clipped: 16-bit grayscale ("I;16", or "I" with
    values past 255) divided by 257, float ("F") in [0, 1] times 255; PIL converts the rest."""
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image).astype(np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max() > 255):
            values = values / 257.0
        elif image.mode == "F" and values.max() <= 1.0:
            values = values * 255.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))  # "L"
    return image.convert("RGB")


def load_image(path: str | Path, resolution: int) -> torch.Tensor:
    """One image file as RGB uint8 [3, R, R], resized and center-cropped; HwaksanError if bad."""
    try:
        with Image.open(path) as image:
            image.load()  # a full decode: catches truncated files that `verify()` lets through
            image = _resize_center_crop(to_rgb(image), resolution)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise HwaksanError(f"cannot read image {path}: {e}") from e
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)  # [3, R, R] uint8


def _read_metadata(path: Path) -> dict[Path, dict]:
    """file path -> its metadata row, for one metadata.jsonl; errors name the line."""
    rows = {}
    if not path.is_file():
        raise HwaksanError(f"{path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise HwaksanError(f"{path} is not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise HwaksanError(f"cannot read {path}: {e.strerror or e}") from e
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise HwaksanError(f"{path} line {number} is not valid JSON: {e.msg}") from e
        if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
            raise HwaksanError(f'{path} line {number} needs a "file_name" string')
        if "text" in row and not isinstance(row["text"], str):
            raise HwaksanError(f'{path} line {number}: "text" must be a string')
        label = row.get("label", 0)
        if isinstance(label, bool) or not (isinstance(label, int) and 0 <= label < 2**31):
            raise HwaksanError(f'{path} line {number}: "label" must be a non-negative integer')
        try:
            target = (path.parent / row["file_name"]).resolve()
        except (OSError, RuntimeError, ValueError) as e:  # a loop of links, a NUL in the name
            raise HwaksanError(f"{path} line {number}: bad file_name ({e})") from e
        if not target.is_file():
            raise HwaksanError(f"{path} line {number} names a missing file {row['file_name']!r}")
        rows[target] = row
    return rows


def find_images(root: Path) -> list[Path]:
    """Image files under `root` (recursively, sorted), or a HwaksanError for a bad folder."""
    if not root.exists():
        raise HwaksanError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise HwaksanError(f"{root} is not a folder")
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise HwaksanError(f"image folder {root} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


class ImageFolder(Dataset):
    """Images under `path` as dict(image=[3, R, R] in [-1, 1], caption=str, file_name=str),
    plus class_id=int when every image has a "label" in metadata.jsonl.

    `skip_bad=True` skips unreadable files (listed in `.skipped`, with a warning) instead of
    raising; decoded images are kept in memory as uint8 (`cache=False` re-reads per item).
    """

    def __init__(
        self,
        path: str | Path,
        resolution: int,
        captions: bool = True,
        skip_bad: bool = False,
        cache: bool = True,
    ) -> None:
        self.root, self.resolution = Path(path), resolution
        files = find_images(self.root)
        metadata: dict[Path, dict] = {}
        if captions:
            for metadata_path in sorted(self.root.rglob(METADATA_NAME)):
                metadata.update(_read_metadata(metadata_path))
        self.files, self.skipped, cached = [], [], []
        for file in tqdm(files, desc="checking images", leave=False, disable=len(files) < 200):
            try:
                image = load_image(file, resolution)
            except HwaksanError as e:
                if not skip_bad:
                    raise
                self.skipped.append((file, str(e)))
                continue
            self.files.append(file)
            cached.append(image if cache else None)
        if self.skipped:
            message = f"skipped {len(self.skipped)} unreadable image(s) in {self.root}"
            warnings.warn(message, stacklevel=2)
        if not self.files:
            raise HwaksanError(f"image folder {self.root} has no readable images")
        self._cache = cached if cache else None
        rows = [metadata.get(f.resolve(), {}) for f in self.files]
        self.captions: list[str] = [row.get("text", "") for row in rows]
        self.labels: list[int | None] = [row.get("label") for row in rows]
        self.has_labels = all(label is not None for label in self.labels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        image = self._cache[i] if self._cache else load_image(self.files[i], self.resolution)
        item = dict(
            image=image.float() / 127.5 - 1.0,  # [3, R, R] in [-1, 1]
            caption=self.captions[i],
            file_name=str(self.files[i].relative_to(self.root)),
        )
        if self.has_labels:
            item["class_id"] = self.labels[i]
        return item

    def images(self) -> torch.Tensor:
        """All images stacked: [N, 3, R, R] in [-1, 1]."""
        return torch.stack([self[i]["image"] for i in range(len(self))])
