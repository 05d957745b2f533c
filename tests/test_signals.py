"""SIGTERM and SIGHUP (a scheduler's stop, a container's stop, a closed terminal) finish the step,
save a checkpoint and stop like Ctrl-C; the run then resumes to the same weights as one never
stopped."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from train_toys import BlobDataset, TinyDenoiser

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.loop import TrainConfig, train


class _Signalled(DiffusionRecipe):
    """A tiny diffusion recipe that sends itself `signum` in the middle of step 2."""

    def __init__(self, signum: int | None = None) -> None:
        torch.manual_seed(0)
        super().__init__(TinyDenoiser(channels=1), NoiseSchedule.cosine(100), (1, 8, 8))
        self.signum = signum

    def loss(self, model, batch, step):
        if step == 2 and self.signum is not None:
            os.kill(os.getpid(), self.signum)
            self.signum = None
        return super().loss(model, batch, step)


def _config(out, **overrides) -> TrainConfig:
    return TrainConfig(out_dir=str(out), steps=5, batch_size=4, ema_decay=0.9, progress=False,
                       checkpoint_every=100, **overrides)  # fmt: skip


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_signal_saves_and_stops_then_the_run_resumes_exactly(tmp_path, name):
    if not hasattr(signal, name):
        pytest.skip(f"no {name} on this platform")
    data = BlobDataset(n=16)
    straight = train(_Signalled(), data, _config(tmp_path / "straight"))
    before = signal.getsignal(getattr(signal, name))
    with pytest.raises(KeyboardInterrupt):
        train(_Signalled(getattr(signal, name)), data, _config(tmp_path / "stopped"))
    assert signal.getsignal(getattr(signal, name)) is before  # the handler is put back
    found = ckpt.load_checkpoint(tmp_path / "stopped" / "checkpoints")
    assert found.state["step"] == 3  # step 2 (0-based) finished, then saved
    resumed = train(_Signalled(), data, _config(tmp_path / "stopped", resume=True))
    for k, v in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_an_ignored_sighup_stays_ignored(tmp_path):
    """Under `nohup` a closed terminal must not stop the run."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        result = train(_Signalled(signal.SIGHUP), BlobDataset(n=16), _config(tmp_path))
        assert result.step == 5
    finally:
        signal.signal(signal.SIGHUP, previous)
