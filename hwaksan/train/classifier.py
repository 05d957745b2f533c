"""Train a noise-aware classifier p(y | x_t, t) on the shared loop, and measure it.

The recipe noises each image to a uniformly drawn t under the diffusion model's own schedule and
minimises the cross-entropy of its label (Dhariwal & Nichol 2021, sec. 4). `run_classifier` is
what `hwaksan train-classifier` calls: data, network, loop, held-out accuracy per t, and the
model folder `<out>/model` that `load_classifier` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hwaksan.diffusion.losses import sample_forward
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.nets.classifier import NoisyClassifier, NoisyClassifierConfig, save_classifier
from hwaksan.train.data import TrainingData, training_data
from hwaksan.train.loop import Recipe, TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything

EVAL_TIMESTEPS = (0, 100, 250, 500, 750, 900)  # held-out accuracy is reported at these t


class ClassifierRecipe(Recipe):
    """Cross-entropy of `model(x_t, t)` against the label of x0, t ~ U{0..T-1}.

    Batches are dicts with "image" ([B, C, H, W] in [-1, 1]) and "class_id" ([B] long).
    """

    def __init__(self, model: NoisyClassifier, schedule: NoiseSchedule) -> None:
        self.model, self.schedule = model, schedule
        with torch.no_grad():  # the classifier reads alpha_t x_t (see hwaksan.nets.classifier)
            model.input_scale.copy_(schedule.sqrt_alphas_cumprod.float())

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        x0, labels = batch["image"], batch["class_id"].to(batch["image"].device)
        t, _, x_t = sample_forward(x0, self.schedule)  # x_t ~ q(x_t | x0) at random t
        logits = model(x_t, t)  # (B, num_classes)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return F.cross_entropy(logits, labels), {"accuracy": float(accuracy)}

    def describe(self) -> dict:
        return {
            "kind": "noisy_classifier",
            "classifier": self.model.config.to_dict(),
            "schedule": self.schedule.to_config(),
        }


@torch.no_grad()
def heldout_accuracy(
    classifier: NoisyClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: tuple[int, ...] = EVAL_TIMESTEPS,
    seed: int = 0,
) -> dict[int, float]:
    """Accuracy on `images` noised to each t in `timesteps` (seeded noise): {t: accuracy}."""
    generator = torch.Generator().manual_seed(seed)
    device = next(classifier.parameters()).device
    out = {}
    for t in timesteps:
        t_batch = torch.full((len(images),), t, dtype=torch.long)
        _, _, x_t = sample_forward(images, schedule, generator, t=t_batch)
        logits = torch.cat([classifier(x.to(device), s.to(device)).cpu()
                            for x, s in zip(x_t.split(256), t_batch.split(256))])  # fmt: skip
        out[t] = float((logits.argmax(1) == labels).float().mean())
    return out


@dataclass
class ClassifierRun:
    """The choices that define a noise-aware classifier's training run."""

    data: str = "digits"  # "digits" | "shapes" (single shapes, class = shape x color)
    resolution: int | None = None  # None: the data's default (digits 16, shapes 32)
    channels: tuple[int, ...] = (32, 64, 128)
    attention_resolutions: tuple[int, ...] = ()
    schedule: str = "cosine"  # must be the schedule of the diffusion model it will guide
    num_train_timesteps: int = 1000
    train: TrainConfig = field(default_factory=TrainConfig)


def heldout_data(data: TrainingData) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled images the classifier never trained on: digits' held-out split, or shapes
    scenes from another seed."""
    name = data.info.get("name")
    if name == "digits":
        from hwaksan.data.digits import load_digits_tensors

        return load_digits_tensors("heldout", data.resolution)
    if name == "shapes":
        from hwaksan.train.data import shapes_data

        held = shapes_data(data.resolution, length=1000, seed=data.info["seed"] + 1)
        return held.dataset.images, held.dataset.class_ids
    raise HwaksanError(f"no held-out set for data {name!r}")


def run_classifier(
    run: ClassifierRun, data: TrainingData | None = None
) -> tuple[NoisyClassifier, TrainResult, dict[int, float]]:
    """Train, measure held-out accuracy per t, save `<out>/model`; return (classifier, result,
    accuracy)."""
    from hwaksan.diffusion.schedule import build_schedule

    seed_everything(run.train.seed)  # before anything random is made: one seed, one run
    data = data or training_data(run.data, run.resolution)
    if data.num_classes is None:
        raise HwaksanError(f"a classifier needs labels, and {run.data} has none")
    schedule = build_schedule(run.schedule, run.num_train_timesteps)
    config = NoisyClassifierConfig(
        in_channels=data.channels, resolution=data.resolution, num_classes=data.num_classes,
        channels=tuple(run.channels), attention_resolutions=tuple(run.attention_resolutions),
        schedule=schedule.to_config(),
    )  # fmt: skip
    result = train(ClassifierRecipe(NoisyClassifier(config), schedule), data.dataset, run.train)
    classifier = (result.ema_model or result.model).eval()
    accuracy = heldout_accuracy(classifier, *heldout_data(data), schedule)
    if result.is_main:
        save_classifier(
            classifier, Path(run.train.out_dir) / "model", class_names=data.class_names,
            data={**data.info, "steps": result.step}, heldout_accuracy=accuracy,
        )  # fmt: skip
    return classifier, result, accuracy
