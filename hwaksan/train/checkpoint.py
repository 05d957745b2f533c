"""Training checkpoints that a kill at any moment cannot corrupt.

A checkpoint is a folder `checkpoints/step_XXXXXXXX/` holding one safetensors file per group of
tensors (model, ema, optimizer, rng) and `state.json` (step, data position, optimizer's
non-tensor state, what model it is). It is written under a temporary name, renamed whole, and only
then named in `checkpoints/latest` (itself replaced atomically), so `latest` always names a
complete checkpoint. Nothing is ever pickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hwaksan.components import DISK_FULL, disk_full_message
from hwaksan.errors import HwaksanError

LATEST = "latest"


@dataclass
class Checkpoint:
    """What a checkpoint folder holds, loaded: tensor groups by name and the JSON state."""

    path: Path
    tensors: dict[str, dict[str, torch.Tensor]]
    state: dict


def write_atomic(path: Path, text: str) -> None:
    """Write a small text file so readers see either the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def save_checkpoint(
    root: Path,
    step: int,
    tensors: dict[str, dict[str, torch.Tensor]],
    state: dict,
    keep: int = 2,
) -> Path:
    """Write `root/step_{step}` atomically, point `root/latest` at it, keep the newest `keep`.
    A failed write leaves no partial folder; a full disk is a one-line HwaksanError."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    if final.exists() and read_latest_name(root) == final.name:
        return final  # this exact step is already saved and named
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, group in tensors.items():
            _write_tensors(tmp / f"{name}.safetensors", group)
        write_atomic(tmp / "state.json", json.dumps({**state, "step": step}, indent=1))
    except BaseException as e:  # a kill, a full disk: leave nothing half-written behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            needed = sum(_nbytes(g) for g in tensors.values())
            raise HwaksanError(disk_full_message(root, needed)) from None
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_atomic(root / LATEST, final.name)
    _prune(root, keep, final.name)
    return final


def _nbytes(group: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in group.values())


def _prune(root: Path, keep: int, newest: str) -> None:
    """Delete older checkpoints and stale temporary folders, never the one `latest` names."""
    for tmp in root.glob(".tmp_step_*"):
        if not tmp.name.endswith(f"_{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        if old.name != newest:
            shutil.rmtree(old, ignore_errors=True)


def read_latest_name(root: Path) -> str | None:
    try:
        return (root / LATEST).read_text().strip() or None
    except FileNotFoundError:
        return None


NONFINITE = "NONFINITE"  # a marker file: this checkpoint's weights gave a non-finite loss


def load_checkpoint(
    root: Path, verify: Callable[[Checkpoint], None] | None = None
) -> Checkpoint | None:
    """The newest checkpoint under `root` that reads whole and passes `verify` (which raises
    ValueError saying why not), or None if there is none yet. Each one skipped is said on
    stderr with its reason; if none passes, a HwaksanError lists them all."""
    skipped = []
    for path in checkpoint_folders(root):
        try:
            found = read_checkpoint(path)
            if verify is not None:
                verify(found)
        except ValueError as e:
            skipped.append(f"{path.name} ({e})")
            print(f"hwaksan: skipping checkpoint {path}: {e}", file=sys.stderr, flush=True)
            continue
        return found
    if skipped:
        raise HwaksanError(
            f"no checkpoint in {root} can be resumed: {'; '.join(skipped)}; "
            "move them away to start over, or use another --out"
        )
    return None


def checkpoint_folders(root: Path) -> list[Path]:
    """The complete checkpoint folders under `root` (renamed whole), newest first."""
    return sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True)


def read_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint folder read whole; ValueError saying why it cannot be (a file unreadable or
    missing, its weights marked as having given a non-finite loss)."""
    if (path / NONFINITE).exists():
        raise ValueError("its weights gave a non-finite loss")
    try:
        state = json.loads((path / "state.json").read_text())
        tensors = {p.stem: load_file(str(p)) for p in sorted(path.glob("*.safetensors"))}
    except Exception as e:  # OSError, JSON errors, safetensors' own error types
        detail = str(e).splitlines()[0] if str(e) else repr(e)
        raise ValueError(f"a file cannot be read: {detail}") from None
    missing = [g for g in ("optimizer", "rng") if g not in tensors]
    missing += [k for k in ("step", "optimizer", "rng", "data") if k not in state]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}")
    return Checkpoint(path, tensors, state)


def mark_nonfinite(root: Path, step: int) -> bool:
    """Mark checkpoint `step` (if saved) as not good: its weights gave a non-finite loss.
    True if there was one to mark."""
    path = root / f"step_{step:08d}"
    if not path.is_dir():
        return False
    write_atomic(path / NONFINITE, "its weights gave a non-finite loss\n")
    return True


# --- optimizer state <-> (tensors, JSON) -----------------------------------------------------


def optimizer_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into flat tensors ("<param>.<key>") and a JSON-able rest."""
    tensors, scalars = {}, {}
    for pid, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """The inverse of `optimizer_to_tensors`: a state_dict for `optimizer.load_state_dict`."""
    state: dict[int, dict] = {}
    for flat, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, key = flat.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


# --- random number generators ----------------------------------------------------------------


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """torch (CPU, CUDA), numpy and python RNG states as (tensors, JSON)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    meta = {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    py_version, py_state, py_gauss = meta["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
