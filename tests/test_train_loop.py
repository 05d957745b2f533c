"""The training loop: exact resume, atomic checkpoints, EMA math, accumulation, failure modes."""

from __future__ import annotations

import csv
import functools
import importlib
import os
import signal

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from train_toys import BlobDataset, TinyDenoiser

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.ema import EMA, ema_decay_at
from hwaksan.train.loop import Recipe, TrainConfig, lr_at, train
from hwaksan.train.sampler import ShardedEpochSampler


def _recipe(seed: int = 0, num_samples: int = 0) -> DiffusionRecipe:
    torch.manual_seed(seed)
    model = TinyDenoiser(channels=1, num_classes=4)
    return DiffusionRecipe(
        model, NoiseSchedule.cosine(100), (1, 8, 8), prediction_type="v_prediction", num_classes=4,
        snr_gamma=5.0, sample_steps=3, num_samples=num_samples,
    )  # fmt: skip


def _config(tmp_path, **overrides) -> TrainConfig:
    base = dict(
        out_dir=str(tmp_path), steps=6, batch_size=8, lr=3e-3, lr_warmup_steps=2,
        lr_schedule="cosine", ema_decay=0.9, grad_clip=1.0, checkpoint_every=3, progress=False,
        log_every=1,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def test_resume_is_bitwise_identical(tmp_path):
    data = BlobDataset(n=20)  # 20 examples, batch 8: epochs roll over mid-run
    straight = train(_recipe(), data, _config(tmp_path / "a"))
    train(_recipe(), data, _config(tmp_path / "b", steps=3))
    resumed = train(_recipe(seed=1), data, _config(tmp_path / "b", resume=True))
    assert resumed.step == straight.step == 6
    for a, b in [(straight.model, resumed.model), (straight.ema_model, resumed.ema_model)]:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    # the un-resumed run would differ: the check above is not vacuous
    other = train(_recipe(seed=1), data, _config(tmp_path / "c"))
    assert not torch.equal(other.model.conv_out.weight, straight.model.conv_out.weight)
    losses = [_column(tmp_path / run / "log.csv", "loss") for run in "ab"]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def _column(path, name: str) -> list[str]:
    with open(path, newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_crash_mid_checkpoint_keeps_the_last_good_one(tmp_path, monkeypatch):
    data = BlobDataset(n=16)
    first = train(_recipe(), data, _config(tmp_path, steps=3))
    good = {k: v.clone() for k, v in first.model.state_dict().items()}
    calls = []

    def crash_on_second_file(path, tensors):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("simulated crash mid-write")
        real_write(path, tensors)

    real_write = ckpt._write_tensors
    monkeypatch.setattr(ckpt, "_write_tensors", crash_on_second_file)
    with pytest.raises(OSError):
        train(_recipe(), data, _config(tmp_path, resume=True))
    found = ckpt.load_checkpoint(tmp_path / "checkpoints")
    assert found.state["step"] == 3
    for k, v in good.items():
        assert torch.equal(found.tensors["model"][k], v)
    monkeypatch.undo()  # and the run continues from it
    assert train(_recipe(), data, _config(tmp_path, resume=True)).step == 6


def test_ema_decay_warmup_and_update():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10, 0.999) == pytest.approx(11 / 20)
    assert ema_decay_at(10_000, 0.999) == 0.999
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=100)  # decay min(0.5, 101/110) = 0.5
    torch.testing.assert_close(
        ema.model.weight, 0.5 * start + 0.5 * model.weight, rtol=0, atol=1e-7
    )
    ema.update(model, step=0)  # decay 0.1
    expected = 0.1 * (0.5 * start + 0.5 * model.weight) + 0.9 * model.weight
    torch.testing.assert_close(ema.model.weight, expected, rtol=0, atol=1e-6)
    assert not ema.model.weight.requires_grad


class _Regression(Recipe):
    """A deterministic loss (no noise, no dropout) so accumulation can be compared exactly;
    `target_scale` makes the gradients as large as wanted."""

    def __init__(self, nan_from_step: int | None = None, target_scale: float = 1.0) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.nan_from_step, self.target_scale = nan_from_step, target_scale

    def loss(self, model, batch, step):
        x, y = batch
        loss = ((model(x).squeeze(1) - self.target_scale * y) ** 2).mean()
        if self.nan_from_step is not None and step >= self.nan_from_step:
            loss = loss * float("nan")
        return loss, {}


def _regression_data(n: int = 32):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return torch.utils.data.TensorDataset(x, x.sum(1).sin())


@pytest.fixture
def stepped_grads():
    """The gradients each optimizer step is taken with (one list of tensors per step)."""
    seen: list[list[torch.Tensor]] = []

    def record(optimizer, args, kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        seen.append([p.grad.clone() for p in params if p.grad is not None])

    handle = register_optimizer_step_pre_hook(record)
    yield seen
    handle.remove()


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def test_grad_accumulation_equals_a_big_batch(tmp_path, stepped_grads):
    data = _regression_data()
    common = dict(steps=4, lr=1e-2, ema_decay=None, grad_clip=None, lr_warmup_steps=0)
    big = train(_Regression(), data, _config(tmp_path / "big", batch_size=8, **common))
    big_grads = list(stepped_grads)
    stepped_grads.clear()
    acc = train(
        _Regression(), data, _config(tmp_path / "acc", batch_size=2, grad_accum=4, **common)
    )
    for a, b in zip(big.model.parameters(), acc.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(big.model[0].weight, _Regression().model[0].weight)  # it did train
    # Adam is blind to a gradient's scale, so compare what it is given: the big batch's mean
    assert len(stepped_grads) == len(big_grads) == 4
    for step_big, step_acc in zip(big_grads, stepped_grads):
        for g_big, g_acc in zip(step_big, step_acc, strict=True):
            torch.testing.assert_close(g_acc, g_big, rtol=1e-5, atol=1e-7)


def test_grad_clip_scales_to_the_max_norm_and_logs_the_norm_before(tmp_path, stepped_grads):
    data = _regression_data()
    common = dict(steps=1, lr=1e-2, ema_decay=None, lr_warmup_steps=0)
    recipe = functools.partial(_Regression, target_scale=100.0)  # gradients far above the clip
    train(recipe(), data, _config(tmp_path / "free", grad_clip=None, **common))
    train(recipe(), data, _config(tmp_path / "loose", grad_clip=1e9, **common))
    train(recipe(), data, _config(tmp_path / "clip", grad_clip=0.5, **common))
    free, loose, clipped = stepped_grads
    norm = _global_norm(free)
    assert norm > 100 * 0.5
    coef = 0.5 / (norm + 1e-6)  # torch.nn.utils.clip_grad_norm_'s
    for g_free, g_loose, g_clip in zip(free, loose, clipped, strict=True):
        assert torch.equal(g_loose, g_free)  # under the max norm: untouched
        torch.testing.assert_close(g_clip, g_free * coef, rtol=1e-6, atol=0)
    torch.testing.assert_close(_global_norm(clipped), torch.tensor(0.5), rtol=1e-5, atol=0)
    for run in ("loose", "clip"):  # the log shows the norm before clipping
        logged = float(_column(tmp_path / run / "log.csv", "grad_norm")[0])
        assert logged == pytest.approx(float(norm), rel=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = _regression_data()
    clean = train(_Regression(), data, _config(tmp_path / "clean", steps=3, ema_decay=None))
    with pytest.raises(HwaksanError, match="lower --lr"):
        train(_Regression(nan_from_step=4), data, _config(tmp_path / "nan", ema_decay=None))
    found = ckpt.load_checkpoint(tmp_path / "nan" / "checkpoints")
    assert found.state["step"] == 3
    for k, v in clean.model.state_dict().items():
        assert torch.equal(found.tensors["model"][k], v)
        assert torch.isfinite(found.tensors["model"][k]).all()


def test_resume_from_another_models_checkpoint_fails_clearly(tmp_path):
    data = BlobDataset(n=16)
    train(_recipe(), data, _config(tmp_path, steps=3))
    other = DiffusionRecipe(
        TinyDenoiser(channels=1, num_classes=4), NoiseSchedule.linear(100), (1, 8, 8), num_classes=4
    )
    with pytest.raises(HwaksanError, match="different model"):
        train(other, data, _config(tmp_path, resume=True))


class _Interrupting(_Regression):
    def loss(self, model, batch, step):
        if step == 2 and self.model.training:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of step 2
        return super().loss(model, batch, step)


def test_ctrl_c_finishes_the_step_saves_and_stops(tmp_path):
    data = _regression_data()
    with pytest.raises(KeyboardInterrupt):
        train(_Interrupting(), data, _config(tmp_path, steps=10, checkpoint_every=100))
    found = ckpt.load_checkpoint(tmp_path / "checkpoints")
    assert found.state["step"] == 3
    assert train(_Regression(), data, _config(tmp_path, steps=5, resume=True)).step == 5


def test_lr_schedule_and_sampler_shards():
    cfg = TrainConfig(lr=1.0, lr_warmup_steps=4, steps=104, lr_schedule="cosine", min_lr_ratio=0.1)
    assert [lr_at(s, cfg) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(54, cfg) == pytest.approx(0.55)
    assert lr_at(104, cfg) == pytest.approx(0.1)
    shards = [ShardedEpochSampler(10, seed=3, rank=r, world_size=2).next_indices(5) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(10))


def test_log_grid_and_loss_curve_are_written(tmp_path):
    if not hasattr(importlib.import_module("hwaksan.sampling"), "sample"):
        pytest.skip("the samplers have not landed yet")
    train(_recipe(num_samples=4), BlobDataset(n=16), _config(tmp_path, steps=4, sample_every=2))
    assert (tmp_path / "log.csv").read_text().count("\n") == 5  # header + 4 steps
    assert (tmp_path / "samples" / "step_00000002.png").exists()
    assert (tmp_path / "samples" / "step_00000004.png").exists()


def test_bf16_autocast_and_channels_last_train_close_to_fp32(tmp_path):
    data = BlobDataset(n=16)
    base = dict(steps=3, ema_decay=None, grad_clip=None, lr_warmup_steps=0)
    fp32 = train(_recipe(), data, _config(tmp_path / "fp32", **base))
    bf16 = train(_recipe(), data, _config(tmp_path / "bf16", bf16=True, **base))
    last = train(_recipe(), data, _config(tmp_path / "cl", channels_last=True, **base))
    assert bf16.model.conv_out.weight.dtype == torch.float32  # autocast keeps fp32 master weights
    assert last.model.conv_mid.weight.is_contiguous(memory_format=torch.channels_last)
    start = _recipe().model.conv_out.weight
    moved = (fp32.model.conv_out.weight - start).abs().max()
    for other, tol in ((bf16, 0.2), (last, 1e-3)):
        gap = (other.model.conv_out.weight - fp32.model.conv_out.weight).abs().max()
        assert gap <= tol * moved, (gap, moved)
