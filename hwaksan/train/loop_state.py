"""The training loop's state as one object, and what is done with all of it at once: saving it
to a checkpoint, resuming it from one, and viewing the model with its EMA weights.

When only a part of the model trains (`Recipe.trainable`), the checkpoint holds that part (group
"trainable") and its EMA; the frozen rest is the recipe's to rebuild. When the whole model trains,
the group is "model", as it always was.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hwaksan.errors import HwaksanError
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.ema import EMA
from hwaksan.train.runtime import Runtime
from hwaksan.train.sampler import ShardedEpochSampler

if TYPE_CHECKING:
    from hwaksan.train.loop import Recipe, TrainConfig


@dataclass
class LoopState:
    """Everything one run's steps, checkpoints and grids read, travelling as one object."""

    recipe: Recipe
    dataset: Dataset
    config: TrainConfig
    rt: Runtime
    model: nn.Module  # as trained (DDP-wrapped when distributed)
    raw_model: nn.Module  # unwrapped
    trainable: nn.Module  # recipe.trainable: what the optimizer, EMA and checkpoints see
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    sampler: ShardedEpochSampler
    step: int = 0  # optimizer steps taken

    @property
    def out(self) -> Path:
        return Path(self.config.out_dir)

    @property
    def ckpt_root(self) -> Path:
        return self.out / "checkpoints"

    @property
    def whole(self) -> bool:
        """True when the whole model trains (checkpoint group "model", as always)."""
        return self.trainable is self.recipe.model


@contextlib.contextmanager
def ema_weights(s: LoopState) -> Iterator[nn.Module]:
    """The model with the EMA weights: the EMA's own copy when the whole model trains; the live
    model with the part's averages swapped in (and back out) when a part trains."""
    if s.ema is None:
        yield s.raw_model
    elif s.whole:
        yield s.ema.model
    else:
        with s.ema.swapped_into(s.trainable):
            yield s.raw_model


def ema_model(s: LoopState) -> nn.Module | None:
    """`TrainResult.ema_model`: the EMA copy; for a part, one copy of the model made now."""
    if s.ema is None or s.whole:
        return None if s.ema is None else s.ema.model
    model, part = copy.deepcopy((s.raw_model, s.trainable))  # one copy, shared layers kept shared
    part.load_state_dict(s.ema.state_dict())
    return model.eval().requires_grad_(False)


def save(s: LoopState) -> Path | None:
    """Write a checkpoint from the main process (others wait so no rank runs ahead). It holds the
    trainable part ("model" when that is the whole model, "trainable" otherwise), its EMA, the
    optimizer, RNG and data position, and the recipe's extra state."""
    s.rt.barrier()
    path = None
    if not finite_weights(s):  # a checkpoint is only ever of finite weights: the "last good" one
        last = ckpt.read_latest_name(s.ckpt_root) or "none saved yet"
        raise HwaksanError(
            f"the weights became non-finite by step {s.step}; stopped with the last good "
            f"checkpoint ({last}) kept - try a lower --lr, gradient clipping, or fp32"
        )
    if s.rt.is_main:
        opt_tensors, opt_meta = ckpt.optimizer_to_tensors(s.optimizer.state_dict())
        rng_tensors, rng_meta = ckpt.rng_state()
        tensors = {weights_group(s): s.trainable.state_dict(), "optimizer": opt_tensors,
                   "rng": rng_tensors}  # fmt: skip
        if s.ema is not None:
            tensors["ema"] = s.ema.state_dict()
        extra_tensors, extra_meta = s.recipe.extra_state()
        tensors.update({f"extra_{name}": group for name, group in extra_tensors.items()})
        state = {
            "recipe": s.recipe.describe(),
            "optimizer": opt_meta,
            "rng": rng_meta,
            "data": s.sampler.state_dict(),
            "world_size": s.rt.world_size,
            "extra": extra_meta,
            "train_config": {k: v for k, v in asdict(s.config).items() if k != "resume"},
        }
        path = ckpt.save_checkpoint(s.ckpt_root, s.step, tensors, state, s.config.keep_checkpoints)
    s.rt.barrier()
    return path


def weights_group(s: LoopState) -> str:
    return "model" if s.whole else "trainable"


def resume(s: LoopState) -> None:
    """Load the newest checkpoint that verifies (every file readable, every shape this run's,
    finite weights) into everything and set `s.step` to its step; older ones are tried in turn."""
    found = ckpt.load_checkpoint(s.ckpt_root, verify=lambda c: _verify(s, c))
    if found is None:
        return
    try:
        s.trainable.load_state_dict(found.tensors[weights_group(s)])
        if s.ema is not None and "ema" in found.tensors:
            s.ema.load_state_dict(found.tensors["ema"])
        s.optimizer.load_state_dict(
            ckpt.optimizer_from_tensors(
                found.tensors.get("optimizer", {}), found.state["optimizer"]
            )
        )
        extra = {k[len("extra_") :]: v for k, v in found.tensors.items() if k.startswith("extra_")}
        s.recipe.load_extra_state(extra, found.state.get("extra", {}))
    except (RuntimeError, KeyError, ValueError) as e:
        raise HwaksanError(f"checkpoint {found.path} does not fit this model: {e}") from e
    if found.state.get("world_size", 1) == s.rt.world_size:
        s.sampler.load_state_dict(found.state["data"])
    s.step = int(found.state["step"])
    if s.rt.world_size == 1:
        ckpt.set_rng_state(found.tensors["rng"], found.state["rng"])
    else:  # RNG states are saved for rank 0 only; every rank restarts its streams from the step
        seed_everything(s.config.seed + s.rt.rank + 7919 * s.step)


def _verify(s: LoopState, found: ckpt.Checkpoint) -> None:
    """Raise HwaksanError if `found` is of another model or recipe (the user's to fix), and
    ValueError, saying why, if it is damaged: a group missing, a shape not this run's, a weight
    not finite (then an older checkpoint is tried)."""
    if found.state.get("recipe", {}) != s.recipe.describe():
        raise HwaksanError(
            f"checkpoint {found.path} is from a different model or recipe than this run; "
            "use another --out or the same settings"
        )
    if weights_group(s) not in found.tensors:
        what = "the whole model" if s.whole else "a part of the model"
        raise HwaksanError(f"checkpoint {found.path} is not of a run that trains {what}")
    groups = {weights_group(s): s.trainable.state_dict()}
    if s.ema is not None and "ema" in found.tensors:
        groups["ema"] = s.ema.state_dict()
    for group, ours in groups.items():
        theirs = found.tensors[group]
        for name, tensor in ours.items():
            if name not in theirs or theirs[name].shape != tensor.shape:
                raise ValueError(f"{group}.safetensors has no {name} of shape {list(tensor.shape)}")
            if theirs[name].is_floating_point() and not torch.isfinite(theirs[name]).all():
                raise ValueError(f"{group}.safetensors has non-finite values in {name}")


def finite_weights(s: LoopState) -> bool:
    """Whether every floating weight of the trainable part (and its EMA) is finite."""
    groups = [s.trainable.state_dict()] + ([s.ema.state_dict()] if s.ema is not None else [])
    return all(torch.isfinite(t).all() for g in groups for t in g.values() if t.is_floating_point())


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
