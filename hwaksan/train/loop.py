"""The one training loop every recipe (diffusion, autoencoder, classifier, distillation) runs on.

It reads top to bottom like nanoGPT's and DiT's `train.py`: AdamW with linear warm-up (then
constant or cosine), gradient accumulation, bf16 autocast, gradient clipping, EMA, atomic
checkpoints with exact resume, a CSV log, sample grids. A recipe says what the loss is; the loop
does the rest. Helpers beside it: `ema.py`, `checkpoint.py`, `sampler.py`, `log.py`, `runtime.py`.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from hwaksan.errors import HwaksanError
from hwaksan.images import save_grid
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.ema import EMA
from hwaksan.train.log import CSVLog, plot_loss
from hwaksan.train.runtime import Runtime
from hwaksan.train.sampler import ShardedEpochSampler, collate


@dataclass
class TrainConfig:
    """Everything the loop itself needs; a recipe carries its own settings."""

    out_dir: str = "runs/train"
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # per process and micro-batch; effective = batch_size * grad_accum * procs
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    lr_warmup_steps: int = 0  # linear warm-up from lr / warmup to lr
    lr_schedule: str = "constant"  # "constant" | "cosine" (decays to lr * min_lr_ratio)
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0  # max global gradient norm; None = off
    ema_decay: float | None = 0.999  # None = no EMA
    bf16: bool = False  # bf16 autocast for forward and loss (CPU and CUDA)
    channels_last: bool = False  # model and 4-D inputs in channels-last memory format
    seed: int = 0
    checkpoint_every: int = 500  # also at the last step and on Ctrl-C
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0 = only at the end
    log_every: int = 10
    resume: bool = False
    progress: bool = True
    max_minutes: float | None = None  # stop (and save) once training has run this long


class Recipe(ABC):
    """What a training method tells the loop. Subclass it and override `loss`.

    `model` is the network the optimizer trains (EMA tracks it; DDP wraps it); `loss` receives the
    (possibly wrapped) model. `extra_step` is the hook for a second optimizer (e.g. a GAN
    discriminator), run after each main optimizer step.
    """

    model: nn.Module

    @abstractmethod
    def loss(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(scalar loss to minimize, numbers to log) for one batch."""

    def parameters(self) -> Iterable[nn.Parameter]:
        return self.model.parameters()

    def sample_images(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """Images in [-1, 1] for the progress grid, from `model` (the EMA model if there is one)."""
        return None

    def extra_step(self, batch, step: int) -> dict[str, float]:
        return {}

    def extra_state(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """(tensor groups, JSON) of what `extra_step` trains (a second net and its optimizer),
        saved in every checkpoint; `load_extra_state` puts them back on resume."""
        return {}, {}

    def load_extra_state(self, tensors: dict[str, dict[str, torch.Tensor]], state: dict) -> None:
        """Put back what `extra_state` saved (nothing, unless the recipe trains more)."""
        return None

    def describe(self) -> dict:
        """JSON identifying the model, checked on resume so a checkpoint of another model fails."""
        return {}


@dataclass
class TrainResult:
    step: int
    model: nn.Module  # unwrapped
    ema_model: nn.Module | None
    out_dir: Path
    is_main: bool = True  # the process that writes files (rank 0)


def channels_last_default(bf16: bool) -> bool:
    """The memory format a run gets unless told: channels-last exactly where it was measured to
    win, fp32 training on the CPU (1.27x, benchmarks/results/channels_last_training.md). bf16
    runs faster in NCHW; GPUs are not measured yet."""
    return not bf16 and not torch.cuda.is_available()


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up over `lr_warmup_steps`, then constant or cosine decay to lr * min_lr_ratio."""
    if step < config.lr_warmup_steps:
        return config.lr * (step + 1) / config.lr_warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    progress = (step - config.lr_warmup_steps) / max(1, config.steps - config.lr_warmup_steps)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(recipe: Recipe, dataset: Dataset, config: TrainConfig) -> TrainResult:
    """Train `recipe.model` on `dataset` for `config.steps` optimizer steps (module docstring)."""
    _check(config, dataset)
    rt = Runtime()
    out, ckpt_root = Path(config.out_dir), Path(config.out_dir) / "checkpoints"
    if rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed + rt.rank)

    # Model, optimizer, EMA, data order; then pick up where a saved run stopped.
    model = recipe.model.to(rt.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        recipe.parameters(), lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay
    )
    model, optimizer = rt.prepare(model, optimizer)
    raw_model = rt.unwrap(model)
    ema = EMA(raw_model, config.ema_decay) if config.ema_decay else None
    sampler = ShardedEpochSampler(len(dataset), config.seed, rt.rank, rt.world_size)
    step = 0
    if config.resume:
        step = _resume(ckpt_root, recipe, raw_model, ema, optimizer, sampler, rt, config.seed)
    log = CSVLog(out / "log.csv", step if config.resume else None) if rt.is_main else None

    def save() -> Path | None:
        return _save(ckpt_root, step, recipe, raw_model, ema, optimizer, sampler, config, rt)

    # The loop: one optimizer step per iteration; Ctrl-C is honoured between steps.
    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
               disable=not (config.progress and rt.is_main))  # fmt: skip
    speed = _Throughput(config.batch_size * config.grad_accum * rt.world_size)
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else math.inf
    model.train()
    with bar, _deferred_interrupt() as interrupted:
        while step < config.steps:
            logs = _train_step(recipe, model, optimizer, ema, dataset, sampler, step, config, rt)
            step += 1
            last = step == config.steps or _agree(time.monotonic() > deadline, rt)
            logs["images_per_s"] = speed.tick()
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", img_s=f"{logs['images_per_s']:.0f}")
            if log is not None and (step % config.log_every == 0 or last):
                log.write({"step": step, **logs})
            stop = interrupted()
            if step % config.checkpoint_every == 0 or last or stop:
                path = save()
            if stop:
                bar.write(f"interrupted at step {step}: saved {path}; continue with --resume")
                rt.end()
                raise KeyboardInterrupt
            if last:
                break
            if config.sample_every and step % config.sample_every == 0:
                _sample_grid(recipe, raw_model, ema, out, step, rt)
    _sample_grid(recipe, raw_model, ema, out, step, rt)
    if rt.is_main:
        plot_loss(out / "log.csv", out / "loss.png")
    rt.end()
    return TrainResult(step, raw_model, ema.model if ema is not None else None, out, rt.is_main)


def _check(config: TrainConfig, dataset: Dataset) -> None:
    if config.lr_schedule not in ("constant", "cosine"):
        raise HwaksanError(f"unknown lr schedule {config.lr_schedule!r}; use constant or cosine")
    if len(dataset) == 0:
        raise HwaksanError("the training data set is empty")
    if config.batch_size < 1 or config.grad_accum < 1 or config.steps < 0:
        raise HwaksanError("batch size and gradient accumulation must be at least 1")


def _train_step(recipe, model, optimizer, ema, dataset, sampler, step, config, rt) -> dict:
    """Set the lr, accumulate gradients, check the loss, clip, step, update the EMA."""
    lr = lr_at(step, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss, logs, batch = _accumulate(recipe, model, dataset, sampler, step, config, rt)
    if not math.isfinite(loss):
        last = ckpt.read_latest_name(Path(config.out_dir) / "checkpoints") or "none saved yet"
        raise HwaksanError(
            f"the loss became {loss} at step {step}; stopped with the last good checkpoint "
            f"({last}) kept - try a lower --lr, gradient clipping, or fp32 instead of --bf16"
        )
    raw_model = rt.unwrap(model)
    if config.grad_clip:
        logs["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip)
        )
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update(raw_model, step)
    logs.update(recipe.extra_step(batch, step))
    return {"loss": loss, "lr": lr, **logs}


def _agree(flag: bool, rt: Runtime) -> bool:
    """Rank 0's decision for every process (so all ranks stop at the same step)."""
    if rt.world_size == 1:
        return flag
    decision = torch.tensor([float(flag)], device=rt.device)
    torch.distributed.broadcast(decision, src=0)
    return bool(decision.item())


class _Throughput:
    """Images per second, smoothed over recent steps."""

    def __init__(self, images_per_step: int) -> None:
        self.images_per_step, self.last, self.value = images_per_step, time.perf_counter(), 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        current = self.images_per_step / max(now - self.last, 1e-9)
        self.last = now
        self.value = current if not self.value else 0.9 * self.value + 0.1 * current
        return self.value


@contextlib.contextmanager
def _deferred_interrupt():
    """Make the first Ctrl-C a flag the loop checks between steps; a second one stops at once."""
    flag: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        flag.append(True)
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(flag)
    finally:
        signal.signal(signal.SIGINT, previous)


def _accumulate(recipe, model, dataset, sampler, step, config, rt) -> tuple[float, dict, object]:
    """Run grad_accum micro-batches (loss / grad_accum each); return the mean loss and logs."""
    total, logs, batch = 0.0, {}, None
    for micro in range(config.grad_accum):
        batch = _to_device(
            collate([dataset[i] for i in sampler.next_indices(config.batch_size)]),
            rt.device,
            config.channels_last,
        )
        last = micro == config.grad_accum - 1
        with rt.no_sync(model, sync=last):
            with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss, micro_logs = recipe.loss(model, batch, step)
            if not torch.isfinite(loss):
                return float(loss.detach()), logs, batch
            rt.backward(loss / config.grad_accum)
        total += float(loss.detach()) / config.grad_accum
        for k, v in micro_logs.items():
            logs[k] = logs.get(k, 0.0) + float(v) / config.grad_accum
    return total, logs, batch


def _to_device(batch, device: torch.device, channels_last: bool):
    def move(x):
        if not torch.is_tensor(x):
            return x
        x = x.to(device, non_blocking=True)
        return (
            x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x
        )

    if isinstance(batch, dict):
        return {k: move(v) for k, v in batch.items()}
    return tuple(move(v) for v in batch)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _sample_grid(recipe, raw_model, ema, out: Path, step: int, rt: Runtime) -> None:
    """Save a grid of the recipe's samples without touching the training RNG streams."""
    if not rt.is_main:
        return
    model = ema.model if ema is not None else raw_model
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []):
        images = recipe.sample_images(model, step)
    model.train(was_training)
    if images is not None:
        save_grid(images, out / "samples" / f"step_{step:08d}.png")


def _save(root, step, recipe, raw_model, ema, optimizer, sampler, config, rt) -> Path | None:
    """Write a checkpoint from the main process (others wait so no rank runs ahead)."""
    rt.barrier()
    path = None
    if rt.is_main:
        opt_tensors, opt_meta = ckpt.optimizer_to_tensors(optimizer.state_dict())
        rng_tensors, rng_meta = ckpt.rng_state()
        tensors = {"model": raw_model.state_dict(), "optimizer": opt_tensors, "rng": rng_tensors}
        if ema is not None:
            tensors["ema"] = ema.state_dict()
        extra_tensors, extra_meta = recipe.extra_state()
        tensors.update({f"extra_{name}": group for name, group in extra_tensors.items()})
        state = {
            "recipe": recipe.describe(),
            "optimizer": opt_meta,
            "rng": rng_meta,
            "data": sampler.state_dict(),
            "world_size": rt.world_size,
            "extra": extra_meta,
            "train_config": {k: v for k, v in asdict(config).items() if k != "resume"},
        }
        path = ckpt.save_checkpoint(root, step, tensors, state, config.keep_checkpoints)
    rt.barrier()
    return path


def _resume(root, recipe, raw_model, ema, optimizer, sampler, rt, seed: int) -> int:
    """Load the latest checkpoint into everything; return its step (0 if there is none)."""
    found = ckpt.load_checkpoint(root)
    if found is None:
        return 0
    if found.state.get("recipe", {}) != recipe.describe():
        raise HwaksanError(
            f"checkpoint {found.path} is from a different model or recipe than this run; "
            "use another --out or the same settings"
        )
    try:
        raw_model.load_state_dict(found.tensors["model"])
        if ema is not None and "ema" in found.tensors:
            ema.load_state_dict(found.tensors["ema"])
        optimizer.load_state_dict(
            ckpt.optimizer_from_tensors(
                found.tensors.get("optimizer", {}), found.state["optimizer"]
            )
        )
        extra = {k[len("extra_") :]: v for k, v in found.tensors.items() if k.startswith("extra_")}
        recipe.load_extra_state(extra, found.state.get("extra", {}))
    except (RuntimeError, KeyError, ValueError) as e:
        raise HwaksanError(f"checkpoint {found.path} does not fit this model: {e}") from e
    if found.state.get("world_size", 1) == rt.world_size:
        sampler.load_state_dict(found.state["data"])
    step = int(found.state["step"])
    if rt.world_size == 1:
        ckpt.set_rng_state(found.tensors["rng"], found.state["rng"])
    else:  # RNG states are saved for rank 0 only; every rank restarts its streams from the step
        _seed_everything(seed + rt.rank + 7919 * step)
    return step
