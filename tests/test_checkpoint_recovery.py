"""Resume survives a damaged newest checkpoint (it takes the newest one that verifies and says
which it skipped and why), a full disk is one sentence that leaves no partial folder, and the
"last good" checkpoint is the last one whose loss and weights were finite."""

from __future__ import annotations

import errno
import json

import pytest
import torch
from train_toys import BlobDataset, TinyDenoiser

from hwaksan import components
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.train import checkpoint as ckpt
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.loop import TrainConfig, train


def _recipe() -> DiffusionRecipe:
    torch.manual_seed(0)
    return DiffusionRecipe(TinyDenoiser(channels=1), NoiseSchedule.cosine(100), (1, 8, 8))


def _config(out, **overrides) -> TrainConfig:
    base = dict(out_dir=str(out), steps=6, batch_size=4, ema_decay=0.9, progress=False,
                checkpoint_every=2, keep_checkpoints=3)  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path):
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())


DAMAGE = {
    "truncated model file": lambda step: _truncate(step / "model.safetensors"),
    "random optimizer file": lambda step: _random_bytes(step / "optimizer.safetensors"),
    "missing rng file": lambda step: (step / "rng.safetensors").unlink(),
    "missing state": lambda step: (step / "state.json").unlink(),
    "model of another shape": lambda step: components.save_weights(
        {"conv_in.weight": torch.zeros(3, 3)}, step / "model.safetensors"
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_resume_skips_a_damaged_newest_checkpoint_for_the_older_good_one(tmp_path, capsys, damage):
    data = BlobDataset(n=16)
    straight = train(_recipe(), data, _config(tmp_path / "straight"))
    train(_recipe(), data, _config(tmp_path / "run", steps=4))  # checkpoints 2 and 4
    DAMAGE[damage](tmp_path / "run" / "checkpoints" / "step_00000004")
    resumed = train(_recipe(), data, _config(tmp_path / "run", resume=True))
    err = capsys.readouterr().err
    assert "skipping checkpoint" in err and "step_00000004" in err  # said which, and why
    for k, v in straight.model.state_dict().items():  # resumed from step 2, to the same end
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_no_checkpoint_that_verifies_is_one_line_listing_why(tmp_path):
    data = BlobDataset(n=16)
    train(_recipe(), data, _config(tmp_path, steps=2))
    DAMAGE["missing rng file"](tmp_path / "checkpoints" / "step_00000002")
    with pytest.raises(HwaksanError, match=r"no checkpoint .* step_00000002 \(it lacks rng\)"):
        train(_recipe(), data, _config(tmp_path, resume=True))


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_sentence_and_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    data = BlobDataset(n=16)
    train(_recipe(), data, _config(tmp_path, steps=2))
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    monkeypatch.setattr(ckpt, "_write_tensors", _disk_full)
    for _ in range(2):  # each retry on the full disk leaves nothing behind either
        with pytest.raises(HwaksanError, match=r"is full: writing there needs about .* MiB") as e:
            train(_recipe(), data, _config(tmp_path, resume=True))
        assert str(tmp_path / "checkpoints") in str(e.value) and "\n" not in str(e.value)
        assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_a_full_disk_while_saving_a_folder_leaves_the_old_one_and_no_temporary(
    tmp_path, monkeypatch
):
    config = {"model_kind": "hwaksan.classifier"}
    components.write_folder(tmp_path / "clf", config, {"w": {"x": torch.ones(2)}})
    monkeypatch.setattr(components, "save_file", _disk_full)
    with pytest.raises(HwaksanError, match="is full"):
        components.write_folder(tmp_path / "clf", config, {"w": {"x": torch.zeros(2)}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]
    assert json.loads((tmp_path / "clf" / "config.json").read_text()) == config


class _Exploding(DiffusionRecipe):
    """Loss finite until step `bad`, whose weights then give an infinite loss (an --lr 1e30)."""

    def __init__(self, bad: int) -> None:
        torch.manual_seed(0)
        super().__init__(TinyDenoiser(channels=1), NoiseSchedule.cosine(100), (1, 8, 8))
        self.bad = bad

    def loss(self, model, batch, step):
        loss, logs = super().loss(model, batch, step)
        return (loss * float("inf") if step >= self.bad else loss), logs


def test_a_checkpoint_whose_weights_give_a_non_finite_loss_is_not_the_last_good_one(tmp_path):
    data = BlobDataset(n=16)
    with pytest.raises(HwaksanError, match=r"at step 4; .*last good checkpoint \(step_00000002\)"):
        train(_Exploding(bad=4), data, _config(tmp_path))  # step_4's weights gave the inf
    assert (tmp_path / "checkpoints" / "step_00000004" / ckpt.NONFINITE).exists()
    resumed = train(_recipe(), data, _config(tmp_path, resume=True, steps=3))
    assert resumed.step == 3  # resumed from step 2, not from the bad step 4


def test_non_finite_weights_are_never_saved_as_a_checkpoint(tmp_path):
    data = BlobDataset(n=16)
    recipe = _recipe()
    recipe.after_step = lambda model, step: (
        model.conv_out.weight.data.fill_(float("nan")) if step == 3 else None
    )
    with pytest.raises(HwaksanError, match=r"weights became non-finite by step 4.*step_00000002"):
        train(recipe, data, _config(tmp_path))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_00000002"]
