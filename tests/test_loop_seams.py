"""The loop's seams, each through a tiny attachment written here: a trainable part on a frozen
net (LoRA, textual inversion), and the `after_step` hook (a consistency model's target net)."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from hwaksan.errors import HwaksanError
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.ema import EMA
from hwaksan.train.loop import Recipe, TrainConfig, train


class _Adapted(nn.Module):
    """A random base net plus a zero-initialised linear adapter beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.adapter = nn.Linear(4, 1)
        nn.init.zeros_(self.adapter.weight)
        nn.init.zeros_(self.adapter.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.adapter(x)  # (B, 1)


class _AdapterRecipe(Recipe):
    """Regression trained through the adapter only; the grid notes the weights it is shown."""

    def __init__(self, part: bool = True) -> None:
        torch.manual_seed(0)
        self.model = _Adapted()
        if part:
            self.trainable = self.model.adapter
        self.grid_weights: list[torch.Tensor] = []

    def loss(self, model, batch, step):
        x, y = batch
        return ((model(x).squeeze(1) - y) ** 2).mean(), {}

    def sample_images(self, model, step):
        if self.trainable is not self.model:  # the live model, the part's EMA swapped in
            assert model is self.model
        self.grid_weights.append(model.adapter.weight.detach().clone())
        return None


def _data(n: int = 32) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return torch.utils.data.TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]))


def _config(out, **overrides) -> TrainConfig:
    base = dict(
        out_dir=str(out), steps=8, batch_size=8, lr=0.3, ema_decay=0.9, grad_clip=1.0,
        checkpoint_every=4, sample_every=2, progress=False, log_every=1,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def _mse(model: nn.Module, data) -> float:
    x, y = data.tensors
    with torch.no_grad():
        return float(((model(x).squeeze(1) - y) ** 2).mean())


def _assert_equal(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.fixture
def stepped_params():
    """The parameters each optimizer step updates (one list per step)."""
    seen: list[list[nn.Parameter]] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append([p for g in opt.param_groups for p in g["params"]])
    )
    yield seen
    handle.remove()


def test_a_trainable_part_trains_alone_on_a_frozen_net(tmp_path, stepped_params):
    data, untrained = _data(), _AdapterRecipe().model
    recipe = _AdapterRecipe()
    result = train(recipe, data, _config(tmp_path))
    assert _mse(result.model, data) < 0.5 * _mse(untrained, data)  # the adapter learned
    _assert_equal(result.model.base, untrained.base)  # the frozen rest: bit for bit
    assert not any(p.requires_grad for p in result.model.base.parameters())
    part = list(recipe.model.adapter.parameters())
    assert len(stepped_params) == 8
    assert all(len(ps) == 2 and all(p is q for p, q in zip(ps, part)) for ps in stepped_params)
    # the checkpoint holds the part, its EMA and the part's optimizer state, nothing of the base
    found = ckpt.load_checkpoint(tmp_path / "checkpoints")
    assert set(found.tensors) == {"trainable", "ema", "optimizer", "rng"}
    assert set(found.tensors["trainable"]) == set(found.tensors["ema"]) == {"weight", "bias"}
    assert {k.split(".")[0] for k in found.tensors["optimizer"]} == {"0", "1"}
    # the EMA model: one copy, the part's averages in it, the same frozen base
    ema = result.ema_model
    assert ema is not result.model and not ema.training
    _assert_equal(ema.base, untrained.base)
    assert torch.equal(ema.adapter.weight, found.tensors["ema"]["weight"])
    assert not torch.equal(ema.adapter.weight, result.model.adapter.weight)
    assert torch.equal(recipe.grid_weights[-1], ema.adapter.weight)  # grids show the EMA


def test_a_trainable_part_resumes_exactly_and_grids_leave_it_alone(tmp_path):
    data = _data()
    straight = train(_AdapterRecipe(), data, _config(tmp_path / "a"))
    train(_AdapterRecipe(), data, _config(tmp_path / "b", steps=4))
    resumed = train(_AdapterRecipe(), data, _config(tmp_path / "b", resume=True))
    assert resumed.step == straight.step == 8
    _assert_equal(straight.model, resumed.model)
    _assert_equal(straight.ema_model, resumed.ema_model)
    losses = [_column(tmp_path / run / "log.csv", "loss") for run in "ab"]
    assert losses[0] == losses[1] and len(losses[0]) == 8
    # swapping the EMA in for each grid and back out leaves training untouched
    no_grids = train(_AdapterRecipe(), data, _config(tmp_path / "c", sample_every=0))
    _assert_equal(straight.model, no_grids.model)


def _column(path, name: str) -> list[str]:
    with open(path, newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_the_whole_model_keeps_its_checkpoint_layout(tmp_path):
    train(_AdapterRecipe(part=False), _data(), _config(tmp_path, steps=2))
    found = ckpt.load_checkpoint(tmp_path / "checkpoints")
    assert set(found.tensors) == {"model", "ema", "optimizer", "rng"}
    assert set(found.tensors["model"]) == set(_Adapted().state_dict())
    with pytest.raises(HwaksanError, match="not of a run that trains a part"):
        train(_AdapterRecipe(), _data(), _config(tmp_path, steps=4, resume=True))


def test_a_part_outside_the_model_is_refused(tmp_path):
    recipe = _AdapterRecipe()
    recipe.trainable = nn.Linear(4, 1)
    with pytest.raises(HwaksanError, match="model's own layers"):
        train(recipe, _data(), _config(tmp_path))


class _Hooked(_AdapterRecipe):
    """Notes every hook call, and the adapter weights each loss call and after_step see."""

    def __init__(self) -> None:
        super().__init__(part=False)
        self.calls: list[tuple[str, int]] = []
        self.seen_by_loss: list[torch.Tensor] = []
        self.seen_after: list[torch.Tensor] = []

    def loss(self, model, batch, step):
        self.calls.append(("loss", step))
        self.seen_by_loss.append(model.adapter.weight.detach().clone())
        return super().loss(model, batch, step)

    def extra_step(self, batch, step):
        self.calls.append(("extra_step", step))
        return {}

    def after_step(self, model, step):
        assert model is self.model
        self.calls.append(("after_step", step))
        self.seen_after.append(model.adapter.weight.detach().clone())


def test_after_step_runs_once_per_optimizer_step_after_it(tmp_path):
    data, config = _data(), _config(tmp_path, steps=3, grad_accum=2, sample_every=0)
    recipe = _Hooked()
    train(recipe, data, config)
    per_step = [("loss", 0), ("loss", 0), ("extra_step", 0), ("after_step", 0)]
    assert recipe.calls == [(name, s + k) for k in range(3) for name, s in per_step]
    for k in range(2):  # after_step(k) sees the weights step k + 1's loss starts from
        assert torch.equal(recipe.seen_after[k], recipe.seen_by_loss[2 * (k + 1)])
        assert not torch.equal(recipe.seen_after[k], recipe.seen_by_loss[2 * k])
    # across a resume: the steps go on where they stopped
    train(_Hooked(), data, _config(tmp_path / "r", steps=2, grad_accum=2, checkpoint_every=2))
    resumed = _Hooked()
    train(resumed, data, _config(tmp_path / "r", steps=4, grad_accum=2, resume=True))
    assert [s for name, s in resumed.calls if name == "after_step"] == [2, 3]


def test_ema_swapped_into_a_module_and_back_bit_for_bit():
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.5)
    own = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=100)
    live = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.swapped_into(net) as swapped:
        assert swapped is net
        torch.testing.assert_close(net.weight, 0.5 * own["weight"] + 0.5 * live["weight"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, live[k]), k
