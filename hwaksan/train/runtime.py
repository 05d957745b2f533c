"""Where training runs: one process, or many through Hugging Face Accelerate (DDP).

Launched by `torchrun`/`accelerate launch` (WORLD_SIZE > 1) the loop runs under an `Accelerator`;
otherwise it is plain PyTorch and accelerate need not be installed.
"""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from hwaksan.errors import HwaksanError


class Runtime:
    """The few things the loop needs to know about processes and devices."""

    def __init__(self, distributed: bool | None = None) -> None:
        if distributed is None:
            distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.accelerator = None
        if distributed:
            try:
                from accelerate import Accelerator
            except ImportError as e:
                raise HwaksanError(
                    "multi-process training needs accelerate: pip install 'hwaksan[dist]'"
                ) from e
            self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
            self.device = self.accelerator.device
            self.rank, self.world_size = (
                self.accelerator.process_index,
                self.accelerator.num_processes,
            )
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self.rank, self.world_size = 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        if self.accelerator is None:
            return model, optimizer
        return self.accelerator.prepare(model, optimizer)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model if self.accelerator is None else self.accelerator.unwrap_model(model)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def no_sync(self, model: nn.Module, sync: bool):
        """Skip DDP's gradient all-reduce on micro-batches that are not the last of a step."""
        if self.accelerator is None or sync:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(model)

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def end(self) -> None:
        """Leave the process group cleanly (a barrier first avoids an abort at exit, FACTS.md)."""
        if self.accelerator is None:
            return
        self.barrier()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sync_second_net(module: nn.Module, first: bool) -> None:
    """Do for a net trained outside DDP (a GAN's discriminator, on its own optimizer) what DDP does
    for the main model: on the `first` call, every rank takes rank 0's weights; on every call, the
    gradients are averaged over the ranks. Call it between backward and the optimizer step.
    Nothing happens in a single process."""
    world = _world()
    if world == 1:
        return
    with torch.no_grad():
        for p in module.parameters():
            if first:
                torch.distributed.broadcast(p, src=0)
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad.div_(world)
