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
