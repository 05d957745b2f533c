"""Whether a folder is diffusers': cheap checks `hk.load` makes before importing anything."""

from __future__ import annotations

import json
from pathlib import Path

from hwaksan.errors import HwaksanError

INDEX = "model_index.json"  # what marks a diffusers pipeline folder


def is_diffusers_folder(folder: Path) -> bool:
    """Whether `folder` is a diffusers pipeline folder (it has `model_index.json`)."""
    return (folder / INDEX).is_file()


def check_not_single_model(folder: Path) -> None:
    """A one-line error for one diffusers model's folder (its `config.json` names a diffusers
    class): hwaksan reads a whole pipeline folder, which says the schedule."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return  # not JSON: the folder reader says so
    if isinstance(config, dict) and "_diffusers_version" in config:
        raise HwaksanError(
            f"{folder} holds one diffusers {config.get('_class_name', 'model')}; hk.load reads "
            f"a pipeline folder ({INDEX}, unet/, scheduler/), e.g. what save_pretrained writes"
        )
