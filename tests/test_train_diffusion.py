"""The diffusion recipe: condition dropout, targets and weighting as the losses define them,
learned variance end to end."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from train_toys import BlobDataset, TinyDenoiser

from hwaksan.diffusion.losses import diffusion_loss
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.loop import TrainConfig, train


class _Recorder(nn.Module):
    """Returns zeros and remembers the class labels it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))
        self.labels: list[torch.Tensor] = []

    def forward(self, x, t, class_labels=None):
        self.labels.append(class_labels)
        return x * self.scale


def test_condition_dropout_replaces_labels_with_the_null_class():
    model = _Recorder()
    recipe = DiffusionRecipe(model, NoiseSchedule.cosine(100), (1, 2, 2), num_classes=10,
                             cond_drop_prob=0.25)  # fmt: skip
    labels = torch.arange(20_000) % 10
    torch.manual_seed(0)
    recipe.loss(model, {"image": torch.zeros(20_000, 1, 2, 2), "class_id": labels}, step=0)
    seen = model.labels[-1]
    dropped = seen == 10
    assert abs(dropped.float().mean().item() - 0.25) < 0.015  # binomial sd 0.003
    assert torch.equal(seen[~dropped], labels[~dropped])  # the rest keep their label
    unconditional = DiffusionRecipe(model, NoiseSchedule.cosine(100), (1, 2, 2))
    unconditional.loss(model, {"image": torch.zeros(4, 1, 2, 2)}, step=0)
    assert model.labels[-1] is None


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_recipe_loss_is_the_diffusion_loss_for_each_target(prediction_type):
    torch.manual_seed(0)
    model = TinyDenoiser(channels=1)
    schedule = NoiseSchedule.linear(100)
    x0 = BlobDataset(n=8).images
    recipe = DiffusionRecipe(model, schedule, (1, 8, 8), prediction_type=prediction_type,
                             snr_gamma=5.0)  # fmt: skip
    torch.manual_seed(1)
    ours, _ = recipe.loss(model, {"image": x0}, step=0)
    torch.manual_seed(1)
    expected = diffusion_loss(model, x0, schedule, prediction_type=prediction_type, snr_gamma=5.0)
    assert torch.equal(ours, expected)


def test_learned_variance_trains_and_samples(tmp_path):
    pytest.importorskip("hwaksan.sampling")
    torch.manual_seed(0)
    model = TinyDenoiser(channels=1)
    model.conv_out = nn.Conv2d(16, 2, 3, padding=1)  # mean + variance channels
    recipe = DiffusionRecipe(model, NoiseSchedule.cosine(100), (1, 8, 8), learn_sigma=True,
                             sample_steps=3, num_samples=4)  # fmt: skip
    config = TrainConfig(out_dir=str(tmp_path), steps=3, batch_size=8, progress=False)
    result = train(recipe, BlobDataset(n=16), config)
    images = recipe.sample_images(result.ema_model, step=3)
    assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()
    assert (tmp_path / "samples" / "step_00000003.png").exists()
