"""Corrupted model folders: every one loads, or fails as one HwaksanError line; never a traceback.

Each case copies the shipped `shapes` model's config.json, breaks one thing (a field of the
wrong type, out of range, NaN, a string for a number, `"modules": []`, config.json a folder...)
and loads it; a folder that still loads must also sample one image through `hwaksan sample`.
"""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from hwaksan.cli import main
from hwaksan.errors import HwaksanError
from hwaksan.model_folder import load
from hwaksan.registry import WEIGHTS_DIR

SOURCE = WEIGHTS_DIR / "shapes"
BASE = json.loads((SOURCE / "config.json").read_text())
BAD_VALUES = ["5", 5, -1, 0, None, [], {}, math.nan, 1e308, True, "cosine"]


def _cases() -> list[tuple[str, object]]:
    """(id, how to break the config): a callable on the config dict, or a special name."""
    cases: list[tuple[str, object]] = []
    for key in [k for k in BASE if k != "model_kind"] + ["sample_shape", "latent_scale"]:
        for value in BAD_VALUES:
            cases.append((f"{key}={value!r}", ("top", key, value)))
    for section in ("schedule", "unet"):
        for key in BASE[section]:
            for value in BAD_VALUES:
                cases.append((f"{section}.{key}={value!r}", (section, key, value)))
        cases.append((f"{section}.unknown", (section, "no_such_key", 1)))
    cases += [
        ("image_shape=[3,16]", ("top", "image_shape", [3, 16])),
        ("image_shape=[1,16,16]", ("top", "image_shape", [1, 16, 16])),
        ("unet.channels=[0,0]", ("unet", "channels", [0, 0])),
        ("unet.channels=['32']", ("unet", "channels", ["32"])),
        ("unet.channels=[100000]", ("unet", "channels", [100000])),
        ("unet.channels=[32,100000]", ("unet", "channels", [32, 100000])),
        ("beta_end<beta_start", ("schedule", "beta_end", 1e-5)),
        ("modules.autoencoder=5", ("top", "modules", {"autoencoder": 5})),
        ("modules.unknown", ("top", "modules", {"vae": {"class": "UNet", "config": {}}})),
        ("modules.bad_class", ("top", "modules", {"autoencoder": {"class": [], "config": {}}})),
        ("unet_class=Nope", ("top", "unet_class", "Nope")),
        ("format_version=99", ("top", "format_version", 99)),
    ]
    for special in ("dir", "missing", "empty", "not-json", "list", "binary", "deep"):
        cases.append((special, special))
    return cases


CASES = _cases()


def _write(folder, how) -> None:
    """A copy of the shapes model in `folder` (weights linked) with `how` broken."""
    folder.mkdir()
    for weights in SOURCE.glob("*.safetensors"):
        (folder / weights.name).symlink_to(weights)
    config, text = json.loads(json.dumps(BASE)), None
    if isinstance(how, tuple):
        where, key, value = how
        (config if where == "top" else config[where])[key] = value
    elif how == "dir":
        (folder / "config.json").mkdir()
        return
    elif how == "missing":
        return
    else:
        text = {"empty": "", "not-json": "{model_kind: 1", "list": "[1, 2]", "binary": "\udcff",
                "deep": "[" * 100_000 + "]" * 100_000}[how]  # fmt: skip
    if how == "binary":
        (folder / "config.json").write_bytes(b"\xff\xfe\x00garbage")
        return
    (folder / "config.json").write_text(text if text is not None else json.dumps(config))


@pytest.fixture(autouse=True)
def plain_pytorch(monkeypatch):
    """Inputs are the subject here, not kernels: no compile (or wait on one) inside a case."""
    monkeypatch.setenv("HWAKSAN_FUSED_KERNELS", "0")


def test_table_is_big_enough():
    assert len(CASES) >= 300


@pytest.mark.parametrize("how", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_corrupt_folder_loads_or_fails_in_one_line(tmp_path, how):
    folder = tmp_path / "model"
    _write(folder, how)
    try:
        load(folder, device="cpu")
    except HwaksanError as e:
        message = str(e)
        assert message and "\n" not in message, message
        assert "config.json" in message or str(folder) in message, message
        return
    result = CliRunner().invoke(
        main, ["sample", str(folder), "-n", "1", "--steps", "2", "--out", str(tmp_path / "g.png")]
    )
    assert result.exit_code in (0, 2), result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    if result.exit_code == 2:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr


# image folders: id -> files to write (name -> bytes; "png" a valid image, "png[:30]" its start)


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    return buffer.getvalue()


def _meta(*rows: str) -> bytes:
    return "\n".join(rows).encode()


IMAGE_FOLDERS = {
    "empty": {},
    "no-images": {"a.txt": b"hello"},
    "zero-byte-png": {"a.png": b""},
    "truncated-png": {"a.png": "png[:30]"},
    "text-as-png": {"a.png": b"not an image at all"},
    "folder-named-png": {"a.png/b.txt": b"x"},
    "metadata-not-json": {"a.png": "png", "metadata.jsonl": b"{file_name: a.png"},
    "metadata-not-utf8": {"a.png": "png", "metadata.jsonl": b"\xff\xfe\x00garbage"},
    "metadata-a-folder": {"a.png": "png", "metadata.jsonl/x.txt": b"x"},
    "metadata-list": {"a.png": "png", "metadata.jsonl": b"[1, 2]"},
    "metadata-no-file-name": {"a.png": "png", "metadata.jsonl": b'{"text": "a"}'},
    "metadata-file-name-number": {"a.png": "png", "metadata.jsonl": b'{"file_name": 5}'},
    "metadata-missing-file": {"a.png": "png", "metadata.jsonl": b'{"file_name": "b.png"}'},
    "metadata-nul-name": {"a.png": "png", "metadata.jsonl": b'{"file_name": "a\\u0000.png"}'},
    "metadata-text-number": {
        "a.png": "png", "metadata.jsonl": b'{"file_name": "a.png", "text": 5}'},
    "metadata-label-string": {
        "a.png": "png", "metadata.jsonl": b'{"file_name": "a.png", "label": "3"}'},
    "metadata-label-negative": {
        "a.png": "png", "metadata.jsonl": b'{"file_name": "a.png", "label": -1}'},
    "metadata-label-bool": {
        "a.png": "png", "metadata.jsonl": b'{"file_name": "a.png", "label": true}'},
    "metadata-label-huge": {
        "a.png": "png", "metadata.jsonl": b'{"file_name": "a.png", "label": 1e999}'},
    "metadata-label-float": {
        "a.png": "png", "metadata.jsonl": b'{"file_name": "a.png", "label": 1.5}'},
}  # fmt: skip


@pytest.mark.parametrize("name", list(IMAGE_FOLDERS))
def test_corrupt_image_folder_fails_in_one_line(tmp_path, name):
    from hwaksan.data.folder import ImageFolder

    png = _png()
    root = tmp_path / "images"
    root.mkdir()
    for file, content in IMAGE_FOLDERS[name].items():
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        data = {"png": png, "png[:30]": png[:30]}.get(content, content)
        (root / file).write_bytes(data)
    with pytest.raises(HwaksanError) as error:
        ImageFolder(root, 8)
    assert "\n" not in str(error.value) and str(root) in str(error.value), str(error.value)


def test_a_file_as_the_image_folder_is_one_line(tmp_path):
    from hwaksan.data.folder import ImageFolder

    (tmp_path / "x.png").write_bytes(_png())
    with pytest.raises(HwaksanError, match="is not a folder"):
        ImageFolder(tmp_path / "x.png", 8)


# the other folder kinds: each shipped folder's config, one nested field broken at a time
OTHER_KINDS = {"digits_classifier_noisy": "load_classifier", "autoencoder_kl": "load_autoencoder",
               "autoencoder_vq": "load_autoencoder", "mini_clip": "load_text_encoder"}  # fmt: skip
OTHER_BAD = ["5", -1, []]


def _paths(config: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested config (model_kind aside)."""
    paths = []
    for key, value in config.items():
        if prefix + (key,) != ("model_kind",):
            paths.append(prefix + (key,))
        if isinstance(value, dict):
            paths += _paths(value, prefix + (key,))
    return paths


OTHER_CASES = [
    (name, path, value)
    for name in OTHER_KINDS
    for path in _paths(json.loads((WEIGHTS_DIR / name / "config.json").read_text()))
    if len(path) == 1 or path[0] in ("config", "class", "kind")  # what the loader reads
    for value in OTHER_BAD
]


@pytest.mark.parametrize(
    "name, path, value", OTHER_CASES, ids=[f"{n}:{'.'.join(p)}={v!r}" for n, p, v in OTHER_CASES]
)
def test_corrupt_classifier_autoencoder_clip_folder_loads_or_fails_in_one_line(
    tmp_path, name, path, value
):
    import hwaksan as hk

    source = WEIGHTS_DIR / name
    folder = tmp_path / "model"
    folder.mkdir()
    for file in source.iterdir():
        if file.name != "config.json":
            (folder / file.name).symlink_to(file)
    config = json.loads((source / "config.json").read_text())
    inner = config
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    (folder / "config.json").write_text(json.dumps(config))
    try:
        getattr(hk, OTHER_KINDS[name])(folder)
    except HwaksanError as e:
        assert "\n" not in str(e) and "config.json" in str(e), str(e)


def test_a_network_too_big_for_memory_is_refused_before_allocation(tmp_path):
    """channels [100000] would ask for hundreds of GB: refused from the meta-device build, fast."""
    import time

    import hwaksan as hk

    folder = tmp_path / "model"
    _write(folder, ("unet", "channels", [32, 100000]))
    start = time.perf_counter()
    with pytest.raises(HwaksanError, match="GiB, more than half of this machine's"):
        hk.load(folder)
    assert time.perf_counter() - start < 10
