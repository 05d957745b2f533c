"""The models a page offers: each loaded once, with the adapter files asked for, and run one
generation at a time (a second request for the same model waits its turn)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hwaksan.errors import HwaksanError
from hwaksan.model_folder import MODEL_KIND, load
from hwaksan.pipeline import Pipeline
from hwaksan.registry import SHIPPED, SHIPPED_ADAPTERS, WEIGHTS_DIR

KEEP_LOADED = 4  # pipelines kept in memory (a model with other adapters is another one)


def shipped_models() -> list[str]:
    """The shipped names that are models to generate from (not classifiers or encoders)."""
    names = []
    for name in SHIPPED:
        config = WEIGHTS_DIR / name / "config.json"
        if config.exists() and json.loads(config.read_text()).get("model_kind") == MODEL_KIND:
            names.append(name)
    return names


class Models:
    """`choices`: the offered names first, then every shipped model; `adapter_choices`: the
    shipped adapters. `pipeline(name, adapters)` loads (and keeps) a model with those adapters;
    `turn(name)` holds that model for one generation."""

    def __init__(self, offered: Sequence[str] = (), loader: Callable[[str], Pipeline] = load,
                 keep: int = KEEP_LOADED) -> None:  # fmt: skip
        self.choices = list(dict.fromkeys([*map(str, offered), *shipped_models()]))
        self.adapter_choices = [n for n in SHIPPED_ADAPTERS if (WEIGHTS_DIR / n).is_dir()]
        self._loader, self._keep = loader, keep
        self._loaded: OrderedDict[tuple, tuple[Pipeline, list[str]]] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._uploads = tempfile.TemporaryDirectory(prefix="hwaksan-serve-")

    @contextmanager
    def turn(self, name: str) -> Iterator[None]:
        """Hold model `name` for one generation: one at a time per model, in turn."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            yield

    def busy(self, name: str) -> bool:
        """Whether a generation on `name` runs now (a new one would wait)."""
        lock = self._locks.get(name)
        return lock is not None and lock.locked()

    def pipeline(self, name: str, adapters: Sequence[str | Sequence[str]] = ()
                 ) -> tuple[Pipeline, list[str]]:  # fmt: skip
        """The model with `adapters` loaded in order (`Pipeline.load_adapter`: LoRA, textual
        inversion, ControlNet, IP-Adapter), each a shipped adapter's name, a path, or an upload's
        files; and a note per adapter on what it added."""
        if not str(name).strip():
            raise HwaksanError("choose a model: a shipped name or a model folder")
        paths = [a if isinstance(a, (str, Path)) else self.adapter_folder(a) for a in adapters]
        key = (name, tuple(map(str, paths)))
        with self._guard:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        pipe = self._loader(name)
        notes = [_note(pipe, pipe.load_adapter(path)) for path in paths]
        with self._guard:
            self._loaded[key] = (pipe, notes)
            while len(self._loaded) > self._keep:
                self._loaded.popitem(last=False)
        return pipe, notes

    def adapter_folder(self, files: Sequence[str]) -> Path:
        """The uploaded files of one adapter (a LoRA's `pytorch_lora_weights.safetensors`, or a
        folder's `config.json` + `adapter.safetensors`), gathered into one folder (an upload keeps
        each file apart); a folder path as it is."""
        paths = [Path(f) for f in files]
        if len(paths) == 1 and paths[0].is_dir():
            return paths[0]
        digest = hashlib.sha256("\n".join(sorted(map(str, paths))).encode()).hexdigest()[:16]
        folder = Path(self._uploads.name) / digest
        folder.mkdir(exist_ok=True)
        for path in paths:
            shutil.copyfile(path, folder / path.name)
        return folder


def _note(pipe: Pipeline, loaded: object) -> str:
    """One line on what `Pipeline.load_adapter` added: its return value says which kind."""
    if isinstance(loaded, str):  # a LoRA's adapter name
        from hwaksan.nets.adapters import lora_layers

        return f"LoRA on {len(lora_layers(pipe.unet))} layers"
    if isinstance(loaded, list):  # textual inversion's tokens
        return f"new tokens {', '.join(loaded)}"
    return f"{type(loaded).__name__} attached"
