"""The networks a model folder can hold, by class name, and how each is written and rebuilt.

A saveable network has `.config` (with `to_dict()`) and a classmethod `from_config(dict)`; its
class is listed here by name, so a folder's `config.json` can say what to build without pickles.
A module with the class attribute `persistent_weights = False` (a frozen encoder that loads its
own weights, e.g. from an installed package) is rebuilt from its config alone.
Every folder kind (`KINDS`) is written by `write_folder` and its config read by `read_folder`.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hwaksan.errors import HwaksanError

# class name -> "module:attribute"; add one line per saveable network class
CLASSES: dict[str, str] = {
    "UNet": "hwaksan.nets.unet:UNet",
    "ConsistencyUNet": "hwaksan.nets.consistency:ConsistencyUNet",
    "AutoencoderKL": "hwaksan.nets.autoencoder:AutoencoderKL",
    "VQModel": "hwaksan.nets.autoencoder:VQModel",
    "MiniCLIP": "hwaksan.nets.text.mini_clip:MiniCLIP",
    "MiniCLIPTextModel": "hwaksan.nets.text.mini_clip:MiniCLIPTextModel",
    "MiniLMTextEncoder": "hwaksan.nets.text.minilm:MiniLMTextEncoder",
    "HFCLIPTextEncoder": "hwaksan.nets.text.hf_clip:HFCLIPTextEncoder",
    "NoisyClassifier": "hwaksan.nets.classifier:NoisyClassifier",
    "LayoutEncoder": "hwaksan.nets.layout:LayoutEncoder",
}


# model_kind -> (what a folder of that kind holds, how to load it): the one list of folder kinds
KINDS: dict[str, tuple[str, str]] = {
    "hwaksan.diffusion": ("a hwaksan model", "load it with hk.load"),
    "hwaksan.classifier": (
        "a noise-aware classifier",
        "load it with hk.load_classifier, or guide a model with hk.load(model, classifier=...)",
    ),
    "hwaksan.autoencoder": ("an autoencoder", "load it with hk.load_autoencoder"),
    "hwaksan.mini_clip": ("a mini-CLIP", "load it with hk.load_text_encoder"),
    "hwaksan.adapter": (
        "an adapter",
        "load it onto a model with pipe.load_lora_weights, pipe.load_textual_inversion or "
        "pipe.load_controlnet",
    ),
}


def write_folder(
    path: str | Path,
    config: dict,
    weights: dict[str, nn.Module | dict[str, torch.Tensor]],
    dtype: torch.dtype = torch.float32,
) -> Path:
    """`config.json` + one `<name>.safetensors` per entry of `weights` (floating tensors in
    `dtype`), written into a fresh temporary folder that then takes the place of `path` whole:
    a reader never sees half a folder. The one writer of every folder kind. It never deletes what
    it did not write: a folder that is not a hwaksan folder is refused, and the other files of a
    hwaksan folder it replaces (a README, samples) are kept."""
    path = Path(path)
    _check_replaceable(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, module in weights.items():
            save_weights(module, tmp / f"{name}.safetensors", dtype)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    except BaseException as e:  # a full disk, a kill: no partial folder left behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise HwaksanError(disk_full_message(path.parent, _folder_bytes(weights))) from None
        raise
    for file in tmp.iterdir():  # safetensors writes owner-only files; a model is for everyone
        file.chmod(0o644)
    old = path.with_name(f".{path.name}.old{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        for kept in old.iterdir():  # what hwaksan did not write moves into the new folder
            if not _written_by_hwaksan(kept) and not (path / kept.name).exists():
                os.replace(kept, path / kept.name)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _written_by_hwaksan(file: Path) -> bool:
    return file.name == "config.json" or file.name.endswith(".safetensors")


def _check_replaceable(path: Path) -> None:
    """Refuse, in one line, to replace anything but nothing, an empty folder or a hwaksan
    folder (a `config.json` naming one of `KINDS`)."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise HwaksanError(f"cannot save to {path}: it exists and is not a folder")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    try:
        kind = json.loads((path / "config.json").read_text()).get("model_kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind not in KINDS:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise HwaksanError(
            f"cannot save to {path}: it is not a hwaksan folder (it holds {shown}) and saving "
            "would replace it; save into a new or empty folder"
        )


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(folder: Path, needed: int) -> str:
    """One sentence for a full disk: the folder, the space writing needs, the space there is."""
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    return (
        f"the disk holding {folder} is full: writing there needs about {needed / 2**20:.1f} MiB "
        f"and {free / 2**20:.1f} MiB are free; free some space or write somewhere else"
    )


def _folder_bytes(weights: dict[str, nn.Module | dict[str, torch.Tensor]]) -> int:
    states = [w.state_dict() if isinstance(w, nn.Module) else w for w in weights.values()]
    return sum(t.numel() * t.element_size() for state in states for t in state.values())


def read_folder(folder: Path, model_kind: str, format_version: int = 1) -> dict:
    """`folder/config.json`, checked to be of `model_kind` in a format version this hwaksan
    reads; one-line errors otherwise, naming what the folder holds and its loader. The one reader
    of every folder kind."""
    path = folder / "config.json"
    what = KINDS[model_kind][0]
    if not path.exists():
        if (folder / "pytorch_lora_weights.safetensors").exists():
            raise HwaksanError(f"{folder} holds a LoRA; load it onto a model with "
                               "pipe.load_lora_weights")  # fmt: skip
        raise HwaksanError(f"{folder} is not {what} folder: config.json is missing")
    if not path.is_file():
        raise HwaksanError(f"{path} is not a file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HwaksanError(f"cannot read {path}: {e.strerror or e}") from e
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise HwaksanError(f"{path} is not valid JSON ({_first_line(e)})") from e
    kind = config.get("model_kind") if isinstance(config, dict) else None
    if kind != model_kind and kind in KINDS:
        other, how = KINDS[kind]
        raise HwaksanError(f"{path} is not {what} config: {folder} holds {other}; {how}")
    if kind != model_kind:
        raise HwaksanError(f"{path} is not {what} config (its model_kind is not {model_kind!r})")
    version = config.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise HwaksanError(f"{path}: 'format_version' must be a whole number, not {version!r}")
    if version > format_version:
        raise HwaksanError(f"{path} was written by a newer hwaksan; upgrade to load it")
    return config


def component_class(name: str) -> type[nn.Module]:
    """The network class a config.json names; HwaksanError for a name we do not know."""
    if name not in CLASSES:
        raise HwaksanError(f"unknown network class {name!r}; known: {', '.join(sorted(CLASSES))}")
    module, attribute = CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def model_config(model: nn.Module) -> dict | None:
    """The JSON config of a network that has one (`model.config.to_dict()`), else None."""
    config = getattr(model, "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else None


def component_spec(module: nn.Module) -> dict:
    """{"class": ..., "config": ...}: what `build_component` needs to rebuild `module`."""
    config = getattr(module, "config", None)
    name = type(module).__name__
    if name not in CLASSES or not hasattr(config, "to_dict"):
        raise HwaksanError(
            f"{name} cannot be saved: it needs .config.to_dict(), from_config and a line in "
            "hwaksan.components.CLASSES"
        )
    return {"class": name, "config": config.to_dict()}


def build_component(spec: dict, folder: Path) -> nn.Module:
    """The network a spec describes, freshly initialised (weights are loaded separately)."""
    where = f"{folder}/config.json"
    if not isinstance(spec, dict) or "class" not in spec or "config" not in spec:
        raise HwaksanError(f"{where} has a module entry without class and config")
    if not isinstance(spec["class"], str) or not isinstance(spec["config"], dict):
        raise HwaksanError(
            f"{where} has a module entry whose class is not a name or config not {{}}"
        )
    cls = spec["class"]
    return construct(lambda: component_class(cls).from_config(spec["config"]), where, cls)


def construct(make: Callable[[], nn.Module], where: str, what: str) -> nn.Module:
    """`make()`, a network built from a saved config; any complaint about that config (a type
    check's, or a constructor's own about a value that passed the types) is one line naming
    `where`."""
    try:
        _check_size(make, where)
        return make()
    except HwaksanError as e:
        raise HwaksanError(f"{where}: {e}") from e
    except Exception as e:
        raise HwaksanError(f"{where} has an invalid {what} config ({_first_line(e)})") from e


def _check_size(make: Callable[[], nn.Module], where: str) -> None:
    """A config asking for a network larger than half this machine's memory (`channels:
    [100000]`) is refused before any memory is touched: built first on the meta device, which
    allocates nothing. A constructor that cannot run on meta is left to the real build."""
    try:
        with torch.device("meta"):
            module = make()
    except HwaksanError:
        raise
    except Exception:
        return
    size = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    limit = _memory_bytes() // 2
    if size > limit:
        raise HwaksanError(
            f"{where} asks for a network of {size / 2**30:.1f} GiB, more than half of this "
            f"machine's {2 * limit / 2**30:.0f} GiB of memory; its sizes are wrong"
        )


def _memory_bytes() -> int:
    """This machine's physical memory (1 TiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


def _first_line(error: Exception) -> str:
    """An exception's message, first line only (a config error is reported on one line)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def has_weights(module: nn.Module) -> bool:
    """Whether a folder stores this module's weights (False for self-loading frozen encoders)."""
    return getattr(module, "persistent_weights", True)


def save_weights(
    module: nn.Module | dict[str, torch.Tensor], path: Path, dtype: torch.dtype = torch.float32
) -> None:
    """The module's state dict (or a dict of tensors) as safetensors; floating tensors cast to
    `dtype`."""
    state = module.state_dict() if isinstance(module, nn.Module) else module
    weights = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in state.items()
    }
    save_file(weights, str(path))


def weight_file(path: str | Path, preferred: str, what: str) -> Path:
    """The safetensors file at `path`, or in the folder at `path` the file named `preferred`
    (else its one .safetensors file): how exchanged files (LoRA, embeddings) are found."""
    path = Path(path)
    if path.is_dir():
        found = [path / preferred] if (path / preferred).is_file() else sorted(
            path.glob("*.safetensors"))  # fmt: skip
        if len(found) != 1:
            count = "no" if not found else f"{len(found)}"
            raise HwaksanError(f"{path} holds {count} .safetensors files; name the {what} file")
        path = found[0]
    if not path.is_file():
        raise HwaksanError(f"no {what} file at {path}")
    return path


def read_tensors(path: Path, folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, with one-line errors for a missing or corrupt file or
    non-finite (NaN, inf) values."""
    if not path.exists():
        raise HwaksanError(f"{folder} has no {path.name}: the model's weights are missing")
    try:
        weights = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise HwaksanError(f"{path} is not a readable safetensors file ({e})") from e
    for name, tensor in weights.items():  # NaN or inf weights would only ever make black images
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise HwaksanError(
                f"{path} holds non-finite values (NaN or inf) in {name}: the model cannot be used"
            )
    return weights


def load_weights(module: nn.Module, path: Path, folder: Path) -> None:
    """Load safetensors into `module`, with one-line errors for missing, corrupt, non-finite or
    misfit files."""
    weights = read_tensors(path, folder)
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise HwaksanError(f"{path.name} does not match config.json in {folder}: {detail}") from e
