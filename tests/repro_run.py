"""A tiny diffusion run for the reproducibility tests, in this process or as a script.

`python tests/repro_run.py OUT [--kill-in-write N]` trains (resuming whatever OUT holds) with the
fused kernels as the environment has them; --kill-in-write N SIGKILLs the process itself half-way
through the N-th checkpoint file it writes, so a kill inside a checkpoint write is certain.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwaksan.runs.diffusion import DiffusionRun, run_diffusion  # noqa: E402
from hwaksan.train import checkpoint as ckpt  # noqa: E402
from hwaksan.train.data import TrainingData  # noqa: E402
from hwaksan.train.loop import TrainConfig  # noqa: E402

STEPS = 12


class Squares(torch.utils.data.Dataset):
    """16 RGB 8x8 images in [-1, 1]: a bright square in one of four corners (fixed, not seeded
    by the run, so only the run's own randomness is under test)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(123)
        self.images = torch.full((16, 3, 8, 8), -1.0)
        for i in range(16):
            y, x = 4 * (i % 2), 4 * (i // 2 % 2)
            self.images[i, :, y : y + 4, x : x + 4] = 1.0
        self.images += 0.05 * torch.randn(self.images.shape, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i]}


def tiny_run(out: str | Path, seed: int = 0, resume: bool = False, steps: int = STEPS):
    """A tiny U-Net (group norm and self-attention at 4x4, so both fused kernels run when on),
    fp32 channels-last on the CPU, EMA, a checkpoint every 2 steps."""
    data = TrainingData(Squares(), channels=3, resolution=8)
    config = TrainConfig(
        out_dir=str(out), steps=steps, batch_size=4, lr=1e-3, ema_decay=0.9, seed=seed,
        channels_last=True, checkpoint_every=2, keep_checkpoints=2, log_every=1,
        resume=resume, progress=False,
    )  # fmt: skip
    run = DiffusionRun(
        preset="tiny", num_train_timesteps=100, sample_steps=2, num_samples=0, train=config,
        unet_overrides=dict(channels=(8, 16), norm_groups=4, attention_resolutions=(4,)),
    )  # fmt: skip
    return run_diffusion(run, data)


def _kill_inside_write(n: int) -> None:
    """SIGKILL this process half-way through the n-th checkpoint file it writes."""
    real, calls = ckpt._write_tensors, []

    def write(path, tensors):
        calls.append(path)
        if len(calls) == n:
            path.write_bytes(b"\0" * 100)  # half a file, then the kill
            os.kill(os.getpid(), signal.SIGKILL)
        real(path, tensors)

    ckpt._write_tensors = write


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the suite runs (tests/conftest.py)
    if "--kill-in-write" in sys.argv:
        _kill_inside_write(int(sys.argv[sys.argv.index("--kill-in-write") + 1]))
    tiny_run(sys.argv[1], resume=True)
