"""The one training loop every recipe (diffusion, autoencoder, classifier, distillation) runs on.

It reads top to bottom like nanoGPT's and DiT's `train.py`: AdamW with linear warm-up (then
constant or cosine), gradient accumulation, bf16 autocast, gradient clipping, EMA, atomic
checkpoints with exact resume, a CSV log, sample grids. A recipe says what the loss is; the loop
does the rest, on `recipe.trainable` (the whole model, or a part of it such as LoRA layers).
Helpers beside it: `loop_state.py` (the run's state, saved and resumed as one object), `ema.py`,
`checkpoint.py`, `sampler.py`, `log.py`, `runtime.py`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from hwaksan.errors import HwaksanError
from hwaksan.images import save_grid
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.ema import EMA
from hwaksan.train.log import CSVLog, plot_loss
from hwaksan.train.loop_state import (
    LoopState,
    ema_model,
    ema_weights,
    resume,
    save,
    seed_everything,
)
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
    checkpoint_every: int = 500  # also at the last step and on Ctrl-C, SIGTERM, SIGHUP
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0 = only at the end
    log_every: int = 10
    resume: bool = False
    progress: bool = True
    max_minutes: float | None = None  # stop (and save) once training has run this long


class Recipe(ABC):
    """What a training method tells the loop. Subclass it and override `loss`.

    `model` is the network the recipe runs (DDP wraps it); `loss` receives the (possibly wrapped)
    model. `trainable` is what the loop trains: the optimizer, gradient clipping, EMA and
    checkpoints see only it. By default it is `model`. Set it to a module made of some of
    `model`'s layers, holding only what trains (LoRA's low-rank layers, not the layers they wrap;
    a textual-inversion embedding), and the loop freezes the rest of `model`, never changes it,
    and neither copies nor saves it: a resumed run rebuilds it from the recipe. The EMA then
    averages the part alone; progress grids swap its averages into the live model and back, and
    `TrainResult.ema_model` is one copy of the model, made at the end.

    Two hooks run after each optimizer step and EMA update, once per step however many
    micro-batches: `extra_step` trains a second net on the step's batch with its own optimizer (a
    GAN discriminator; its state goes through `extra_state`), then `after_step` updates what
    follows from the new weights (a consistency model's target network). Two hooks, because the
    first is a training step of its own (batch in, logs out) and the second only reads the model.
    """

    model: nn.Module

    @property
    def trainable(self) -> nn.Module:
        """The part of `model` the optimizer trains (default: all of it)."""
        part = getattr(self, "_trainable", None)
        return self.model if part is None else part

    @trainable.setter
    def trainable(self, part: nn.Module) -> None:
        self._trainable = part

    @abstractmethod
    def loss(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """(scalar loss to minimize, numbers to log) for one batch."""

    def parameters(self) -> Iterable[nn.Parameter]:
        """The parameters the optimizer steps: those of `trainable`."""
        return self.trainable.parameters()

    def sample_images(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """Images in [-1, 1] for the progress grid, from `model` (its EMA weights if there are)."""
        return None

    def extra_step(self, batch, step: int) -> dict[str, float]:
        """A second optimizer's step on this step's (last micro-)batch; numbers to log."""
        return {}

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called with the unwrapped model after optimizer step `step` (0-based), the EMA update
        and `extra_step`; state it keeps belongs in `extra_state` for an exact resume."""
        return None

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
    """What a run leaves. `ema_model` is the EMA copy of the model; when only a part was trained,
    a copy of the model made once at the end, with the part's averaged weights in it."""

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
    """Train `recipe.trainable` (by default all of `recipe.model`) on `dataset` for
    `config.steps` optimizer steps (module docstring)."""
    _check(config, dataset)
    s = _setup(recipe, dataset, config)
    if config.resume:
        resume(s)
    log = CSVLog(s.out / "log.csv", s.step if config.resume else None) if s.rt.is_main else None

    # The loop: one optimizer step per iteration; Ctrl-C, SIGTERM and SIGHUP are honoured between
    # steps.
    bar = tqdm(total=config.steps, initial=s.step, desc="train", unit="step", dynamic_ncols=True,
               disable=not (config.progress and s.rt.is_main))  # fmt: skip
    speed = _Throughput(config.batch_size * config.grad_accum * s.rt.world_size)
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else math.inf
    s.model.train()
    with bar, _deferred_interrupt() as interrupted:
        while s.step < config.steps:
            logs = _train_step(s)
            s.step += 1
            last = s.step == config.steps or _agree(time.monotonic() > deadline, s.rt)
            logs["images_per_s"] = speed.tick()
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", img_s=f"{logs['images_per_s']:.0f}")
            if log is not None and (s.step % config.log_every == 0 or last):
                log.write({"step": s.step, **logs})
            stop = interrupted()
            if s.step % config.checkpoint_every == 0 or last or stop:
                path = save(s)
            if stop:
                bar.write(f"interrupted at step {s.step}: saved {path}; continue with --resume")
                s.rt.end()
                raise KeyboardInterrupt
            if last:
                break
            if config.sample_every and s.step % config.sample_every == 0:
                _sample_grid(s)
    _sample_grid(s)
    if s.rt.is_main:
        plot_loss(s.out / "log.csv", s.out / "loss.png")
    s.rt.end()
    return TrainResult(s.step, s.raw_model, ema_model(s), s.out, s.rt.is_main)


def _setup(recipe: Recipe, dataset: Dataset, config: TrainConfig) -> LoopState:
    """Seed; model on the device (the rest frozen when a part trains), optimizer, DDP, EMA."""
    rt = Runtime()
    if rt.is_main:
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed + rt.rank)
    model = recipe.model.to(rt.device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainable = recipe.trainable
    if trainable is not model:
        _freeze_all_but(model, trainable)
    optimizer = torch.optim.AdamW(
        trainable.parameters(), lr=config.lr, betas=config.adam_betas,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    model, optimizer = rt.prepare(model, optimizer)
    ema = EMA(trainable, config.ema_decay) if config.ema_decay else None
    sampler = ShardedEpochSampler(len(dataset), config.seed, rt.rank, rt.world_size)
    return LoopState(
        recipe, dataset, config, rt, model, rt.unwrap(model), trainable, optimizer, ema, sampler
    )


def _freeze_all_but(model: nn.Module, part: nn.Module) -> None:
    """Stop gradients to every parameter of `model` outside `part` (which must lie inside it, so
    that DDP, wrapping `model`, averages the part's gradients)."""
    inside = {id(p) for p in model.parameters()}
    if not all(id(p) in inside for p in part.parameters()):
        raise HwaksanError("the recipe's trainable part must be made of the model's own layers")
    own = {id(p) for p in part.parameters()}
    for p in model.parameters():
        if id(p) not in own:
            p.requires_grad_(False)


def _check(config: TrainConfig, dataset: Dataset) -> None:
    if config.lr_schedule not in ("constant", "cosine"):
        raise HwaksanError(f"unknown lr schedule {config.lr_schedule!r}; use constant or cosine")
    if len(dataset) == 0:
        raise HwaksanError("the training data set is empty")
    if config.batch_size < 1 or config.grad_accum < 1 or config.steps < 0:
        raise HwaksanError("batch size and gradient accumulation must be at least 1")


def _train_step(s: LoopState) -> dict:
    """Set the lr, accumulate gradients, check the loss, clip, step, update the EMA, run the
    recipe's hooks."""
    lr = lr_at(s.step, s.config)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    loss, logs, batch = _accumulate(s)
    if not math.isfinite(loss):
        _stop_on_nonfinite(s, loss)
    if s.config.grad_clip:
        logs["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(s.trainable.parameters(), s.config.grad_clip)
        )
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    if s.ema is not None:
        s.ema.update(s.trainable, s.step)
    logs.update(s.recipe.extra_step(batch, s.step))
    s.recipe.after_step(s.raw_model, s.step)
    return {"loss": loss, "lr": lr, **logs}


def _stop_on_nonfinite(s: LoopState, loss: float) -> None:
    """Stop with a one-line error naming the last good checkpoint: the newest whose weights gave
    a finite loss (a checkpoint of the weights that just gave `loss` is marked as not good)."""
    if s.rt.is_main:
        ckpt.mark_nonfinite(s.ckpt_root, s.step)
    good = [p for p in ckpt.checkpoint_folders(s.ckpt_root) if not (p / ckpt.NONFINITE).exists()]
    last = good[0].name if good else "none saved yet"
    raise HwaksanError(
        f"the loss became {loss} at step {s.step}; stopped with the last good checkpoint "
        f"({last}) kept - try a lower --lr, gradient clipping, or fp32 instead of --bf16"
    )


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


# The signals that ask a run to stop: Ctrl-C, a scheduler's or container's stop, a closed terminal.
STOP_SIGNALS = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)
)


@contextlib.contextmanager
def _deferred_interrupt():
    """Make the first SIGINT, SIGTERM or SIGHUP a flag the loop checks between steps (it then
    saves a checkpoint and stops); a second one of the same signal stops at once."""
    flag: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {sig: signal.getsignal(sig) or signal.SIG_DFL for sig in STOP_SIGNALS}
    previous = {sig: old for sig, old in previous.items() if old != signal.SIG_IGN}  # nohup: kept

    def handler(signum, frame):
        flag.append(signum)
        signal.signal(signum, previous[signum])

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield lambda: bool(flag)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _accumulate(s: LoopState) -> tuple[float, dict, object]:
    """Run grad_accum micro-batches (loss / grad_accum each); return the mean loss, the mean logs
    and the last micro-batch."""
    config, rt = s.config, s.rt
    total, logs, batch = 0.0, {}, None
    for micro in range(config.grad_accum):
        batch = _to_device(
            collate([s.dataset[i] for i in s.sampler.next_indices(config.batch_size)]),
            rt.device,
            config.channels_last,
        )
        last = micro == config.grad_accum - 1
        with rt.no_sync(s.model, sync=last):
            with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss, micro_logs = s.recipe.loss(s.model, batch, s.step)
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


def _sample_grid(s: LoopState) -> None:
    """Save a grid of the recipe's samples (EMA weights if any) without touching the training RNG
    streams."""
    if not s.rt.is_main:
        return
    with ema_weights(s) as model:
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[s.rt.device] if s.rt.device.type == "cuda" else []):
            images = s.recipe.sample_images(model, s.step)
        model.train(was_training)
    if images is not None:
        save_grid(images, s.out / "samples" / f"step_{s.step:08d}.png")
