"""ImageFolder: good folders load; every kind of bad file or metadata line is named up front."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hwaksan.data.folder import ImageFolder, load_image
from hwaksan.errors import HwaksanError


def _save(path, size=(20, 12), color=(255, 0, 0), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)


@pytest.fixture
def good_folder(tmp_path):
    _save(tmp_path / "a.png", color=(255, 0, 0))
    _save(tmp_path / "b.jpg", color=(0, 0, 255))
    _save(tmp_path / "sub" / "c.webp", size=(8, 8), color=(255, 255, 255))
    _save(tmp_path / "sub" / "d.bmp", size=(16, 40), color=(0, 0, 0))
    rows = [
        {"file_name": "a.png", "text": "a red thing", "label": 1},
        {"file_name": "b.jpg", "text": "a blue thing", "label": 2},
        {"file_name": "sub/c.webp", "text": "white", "label": 0},
        {"file_name": "sub/d.bmp", "text": "black", "label": 3},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "notes.txt").write_text("not an image, and not named like one")
    return tmp_path


def test_good_folder_with_captions_and_labels(good_folder):
    ds = ImageFolder(good_folder, resolution=8)
    assert len(ds) == 4 and ds.skipped == [] and ds.has_labels
    items = {item["file_name"]: item for item in (ds[i] for i in range(len(ds)))}
    assert set(items) == {"a.png", "b.jpg", "sub/c.webp", "sub/d.bmp"}
    red = items["a.png"]
    assert red["image"].shape == (3, 8, 8) and red["caption"] == "a red thing"
    assert red["class_id"] == 1
    assert torch.allclose(red["image"][:, 4, 4], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(items["sub/d.bmp"]["image"], torch.tensor(-1.0))
    assert items["b.jpg"]["image"][2].mean() > 0.9  # JPEG blue, within compression error
    assert ds.images().shape == (4, 3, 8, 8)
    uncached = ImageFolder(good_folder, resolution=8, cache=False)
    assert torch.equal(uncached[0]["image"], ds[0]["image"])
    no_captions = ImageFolder(good_folder, resolution=8, captions=False)
    assert no_captions[0]["caption"] == "" and "class_id" not in no_captions[0]


def test_resize_shorter_side_then_center_crop(tmp_path):
    array = np.zeros((10, 30, 3), dtype=np.uint8)  # wide image: left third red, right third blue
    array[:, :10, 0], array[:, 20:, 2], array[:, 10:20, 1] = 255, 255, 255
    Image.fromarray(array).save(tmp_path / "wide.png")
    image = load_image(tmp_path / "wide.png", resolution=10)
    assert image.shape == (3, 10, 10) and image.dtype == torch.uint8
    assert (image[1] > 200).all() and (image[0] < 50).all()  # only the green middle survives


def _corrupt_png(path):
    _save(path.with_suffix(".tmp.png"))
    data = bytearray(path.with_suffix(".tmp.png").read_bytes())
    path.with_suffix(".tmp.png").unlink()
    data[40:60] = b"\x00" * 20  # inside the IDAT chunk: CRC and zlib stream broken
    path.write_bytes(bytes(data))


def _truncated_png(path):
    array = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _text_named_png(path):
    path.write_text("this is not a PNG")


@pytest.mark.parametrize("make_bad", [_corrupt_png, _truncated_png, _text_named_png])
def test_bad_file_is_named_or_skipped(good_folder, make_bad):
    bad = good_folder / "sub" / "bad.png"
    make_bad(bad)
    with pytest.raises(HwaksanError, match="bad.png"):
        ImageFolder(good_folder, resolution=8)
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = ImageFolder(good_folder, resolution=8, skip_bad=True)
    assert len(ds) == 4 and [p.name for p, _ in ds.skipped] == ["bad.png"]


def test_truncated_jpeg_is_caught(good_folder):
    array = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    bad = good_folder / "t.jpg"
    Image.fromarray(array).save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[:2000])
    with pytest.raises(HwaksanError, match="t.jpg"):
        ImageFolder(good_folder, resolution=8)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(HwaksanError, match="does not exist"):
        ImageFolder(tmp_path / "nope", resolution=8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(HwaksanError, match="has no images"):
        ImageFolder(tmp_path / "empty", resolution=8)
    _text_named_png(tmp_path / "onlybad.png")
    with pytest.raises(HwaksanError, match="no readable images"), pytest.warns(UserWarning):
        ImageFolder(tmp_path, resolution=8, skip_bad=True)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2 is not valid JSON"),
        ('["a.png"]', 'line 2 needs a "file_name"'),
        ('{"file_name": "zzz.png", "text": "x"}', "line 2 names a missing file"),
        ('{"file_name": "a.png", "text": 3}', 'line 2: "text" must be a string'),
        ('{"file_name": "a.png", "label": "three"}', 'line 2: "label" must be'),
    ],
)
def test_bad_metadata_line_is_named(good_folder, line, message):
    good = '{"file_name": "b.jpg", "text": "fine"}'
    (good_folder / "metadata.jsonl").write_text(f"{good}\n{line}\n")
    with pytest.raises(HwaksanError, match=message):
        ImageFolder(good_folder, resolution=8)
