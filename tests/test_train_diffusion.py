"""The diffusion recipe: condition dropout, targets and weighting as the losses define them,
learned variance end to end; its parts (space, conditioner, loss terms) through tiny ones written
here, and the description old checkpoints resume by."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from train_toys import BlobDataset, TinyDenoiser

from hwaksan.diffusion.losses import diffusion_loss
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.train.conditioners import Conditioner
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.loop import TrainConfig, train
from hwaksan.train.terms import LossTerm


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


def _mini_clip() -> nn.Module:
    from hwaksan.data.shapes import shapes_vocabulary
    from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel

    torch.manual_seed(0)
    config = MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=16, layers=1, heads=2)
    return MiniCLIPTextModel(config)


BASE_KEYS = ["kind", "unet", "schedule", "prediction_type", "learn_sigma", "num_classes",
             "image_shape"]  # fmt: skip
TEXT_KEYS = ["train_text_encoder", "grounding_weight", "text_encoder"]


@pytest.mark.parametrize(
    "space, conditioner, grounding, kind, keys",
    [
        ("pixel", "none", False, "diffusion", BASE_KEYS),
        ("pixel", "labels", False, "diffusion", BASE_KEYS),
        ("latent", "labels", False, "latent_diffusion", [*BASE_KEYS, "latent_scale"]),
        ("pixel", "text", False, "text_diffusion", [*BASE_KEYS, *TEXT_KEYS]),
        ("pixel", "joint", False, "text_diffusion", [*BASE_KEYS, *TEXT_KEYS]),
        ("latent", "text", True, "latent_text_diffusion", [*BASE_KEYS, "latent_scale", *TEXT_KEYS]),
    ],
)
def test_description_is_the_one_the_four_recipe_classes_wrote(
    space, conditioner, grounding, kind, keys
):
    """Checkpoints of DiffusionRecipe, LatentDiffusionRecipe, TextDiffusionRecipe and
    LatentTextDiffusionRecipe (now one composed recipe) still resume: same keys, order, values."""
    from hwaksan.train.grounding import ObjectMasks, TokenGroundingLoss
    from hwaksan.train.space import LatentSpace
    from hwaksan.train.text import TextConditioned, TextPrompts

    encoder, model = _mini_clip(), TinyDenoiser(channels=4)
    parts = {"space": LatentSpace(nn.Identity(), 2.5)} if space == "latent" else {}
    if conditioner == "labels":
        parts["num_classes"] = 4
    if conditioner in ("text", "joint"):
        joint = conditioner == "joint"
        model = TextConditioned(model, encoder) if joint else model
        parts["conditioner"] = TextPrompts(encoder, train_text_encoder=joint)
    if grounding:
        masks = ObjectMasks(torch.zeros(1, 1, 2, 2), [[("red", "circle")]])
        parts["terms"] = [TokenGroundingLoss(masks, encoder.tokenize, 0.05)]
    schedule = NoiseSchedule.cosine(10)
    got = DiffusionRecipe(model, schedule, (4, 2, 2), learn_sigma=True, **parts).describe()
    assert list(got) == keys
    assert got["kind"] == kind and got["unet"] is None and got["learn_sigma"] is True
    assert got["schedule"] == schedule.to_config() and got["image_shape"] == [4, 2, 2]
    assert got["num_classes"] == (4 if conditioner == "labels" else None)
    if space == "latent":
        assert got["latent_scale"] == 2.5
    if "text_encoder" in got:
        assert got["train_text_encoder"] is (conditioner == "joint")
        assert got["grounding_weight"] == (0.05 if grounding else 0.0)
        assert got["text_encoder"] == {"class": "MiniCLIPTextModel",
                                       "config": encoder.config.to_dict()}  # fmt: skip


def test_label_dropout_draws_come_before_the_losss_t_and_noise():
    """Bit-identical to the recipe before composition: torch.rand for the dropped labels, then
    the loss's t and noise, from one seeded stream."""
    torch.manual_seed(0)
    model, schedule = TinyDenoiser(channels=1, num_classes=4), NoiseSchedule.cosine(100)
    data = BlobDataset(n=8)
    recipe = DiffusionRecipe(model, schedule, (1, 8, 8), num_classes=4, cond_drop_prob=0.5,
                             snr_gamma=5.0)  # fmt: skip
    torch.manual_seed(1)
    ours, _ = recipe.loss(model, {"image": data.images, "class_id": data.labels}, step=0)
    torch.manual_seed(1)
    drop = torch.rand(8) < 0.5
    labels = torch.where(drop, torch.full_like(data.labels, 4), data.labels)
    expected = diffusion_loss(model, data.images, schedule, prediction_type="v_prediction",
                              snr_gamma=5.0, cond={"class_labels": labels})  # fmt: skip
    assert drop.any() and not drop.all() and torch.equal(ours, expected)


class _OutputSquare(LossTerm):
    """A tiny extra term: weight * mean squared output of the main forward, seen by a hook."""

    def __init__(self, weight: float) -> None:
        self.weight, self.batches = weight, []

    @contextlib.contextmanager
    def recording(self, model):
        outputs = []
        handle = model.register_forward_hook(lambda module, args, out: outputs.append(out))
        try:
            yield outputs
        finally:
            handle.remove()

    def __call__(self, model, batch, cond, recorded):
        self.batches.append((batch, cond))
        (out,) = recorded  # one forward: the denoising loss's
        value = out.pow(2).mean()
        return self.weight * value, {"output_square": value.item()}

    def describe(self) -> dict:
        return {"output_weight": self.weight}


def test_a_loss_term_watches_the_main_forward_and_adds_its_weighted_loss():
    torch.manual_seed(0)
    model, data = TinyDenoiser(channels=1, num_classes=4), BlobDataset(n=8)
    batch = {"image": data.images, "class_id": data.labels}
    term = _OutputSquare(0.5)
    schedule = NoiseSchedule.cosine(100)
    plain, with_term = (
        DiffusionRecipe(model, schedule, (1, 8, 8), num_classes=4, cond_drop_prob=0.5, terms=terms)
        for terms in ([], [term])
    )
    torch.manual_seed(1)
    base, _ = plain.loss(model, batch, step=0)
    torch.manual_seed(1)
    total, logs = with_term.loss(model, batch, step=0)
    assert logs["output_square"] > 0 and not model._forward_hooks  # the hook is gone after
    assert torch.equal(total, base + 0.5 * torch.tensor(logs["output_square"]))
    seen, cond = term.batches[0]
    assert torch.equal(cond["class_labels"], seen["class_id"])  # the term sees the dropped batch
    assert (seen["class_id"] == 4).any()
    assert with_term.describe()["output_weight"] == 0.5


class _Brightness(Conditioner):
    """A tiny conditioner: each image's mean brightness, dropped to 0 with probability 1/2."""

    kind = "brightness_diffusion"

    def drop(self, batch: dict) -> dict:
        keep = torch.rand(len(batch["image"])) >= 0.5
        return {**batch, "brightness": batch["image"].mean((1, 2, 3)) * keep}

    def cond(self, batch: dict, device) -> dict:
        return {"brightness": batch["brightness"].to(device)}

    def sample_inputs(self, model, n, device):
        return model, {"brightness": torch.linspace(-1, 1, n, device=device)}


class _Shifted(nn.Module):
    """model(x, t, brightness) = x * w + brightness, remembering each brightness it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, t, brightness):
        self.seen.append(brightness)
        return x * self.w + brightness[:, None, None, None]


def test_a_new_conditioner_reaches_the_model_in_training_and_in_the_progress_grid():
    from hwaksan.train.space import LatentSpace

    model, images = _Shifted(), BlobDataset(n=8).images
    recipe = DiffusionRecipe(model, NoiseSchedule.cosine(10), (1, 8, 8), conditioner=_Brightness(),
                             sample_steps=2, num_samples=3)  # fmt: skip
    torch.manual_seed(0)
    recipe.loss(model, {"image": images}, step=0)
    torch.manual_seed(0)
    keep = torch.rand(8) >= 0.5
    assert torch.equal(model.seen[-1], images.mean((1, 2, 3)) * keep)
    recipe.sample_images(model, step=0)
    assert torch.equal(model.seen[-1], torch.tensor([-1.0, 0.0, 1.0]))
    assert recipe.describe()["kind"] == "brightness_diffusion"
    latent = DiffusionRecipe(model, NoiseSchedule.cosine(10), (1, 8, 8), conditioner=_Brightness(),
                             space=LatentSpace(nn.Identity(), 1.0))  # fmt: skip
    assert latent.describe()["kind"] == "latent_brightness_diffusion"
