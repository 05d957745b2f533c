"""The contrastive recipe (CLIP, Radford et al. 2021) on the shared training loop, and a run.

Symmetric InfoNCE (van den Oord et al. 2018) over a batch of images and their captions, with a
learned temperature; each image also meets its hard-negative caption (NegCLIP, Yuksekgonul et al.
2023). `run_clip` is what `hwaksan train-clip` calls: data, model, loop, and the saved folder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hwaksan.data.shapes import ShapesConfig, shapes_vocabulary
from hwaksan.nets.text.mini_clip import MiniCLIP, MiniCLIPConfig, save_mini_clip
from hwaksan.train.loop import Recipe, TrainConfig, TrainResult, train
from hwaksan.train.loop_state import seed_everything


def contrastive_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP, Fig. 3): cross-entropy of each image over the texts and of each
    text over the images, the matching pair on the diagonal. logits_per_image [B, B + N]: the
    N columns past B are extra negative texts, seen from the image side only."""
    B = logits_per_image.shape[0]
    labels = torch.arange(B, device=logits_per_image.device)
    image_loss = F.cross_entropy(logits_per_image, labels)  # image -> its caption
    text_loss = F.cross_entropy(logits_per_image[:, :B].T, labels)  # caption -> its image
    return (image_loss + text_loss) / 2


class CLIPRecipe(Recipe):
    """Batches of dict(image [B, 3, H, W], caption [B] str, negative_caption [B] str?)."""

    def __init__(self, model: MiniCLIP, hard_negatives: bool = True) -> None:
        self.model, self.hard_negatives = model, hard_negatives

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict]:
        captions = list(batch["caption"])
        if self.hard_negatives:
            captions += list(batch["negative_caption"])
        logits = model(batch["image"], captions)  # (B, B or 2B)
        B = logits.shape[0]
        with torch.no_grad():
            diagonal = torch.arange(B, device=logits.device)
            logs = {
                "accuracy": float((logits.argmax(1) == diagonal).float().mean()),
                "temperature": float(1 / self.model.logit_scale.exp()),
            }
            if self.hard_negatives:  # the caption beats its own one-word-off negative
                hard = logits[diagonal, diagonal] > logits[diagonal, B + diagonal]
                logs["hard_negative_accuracy"] = float(hard.float().mean())
        return contrastive_loss(logits), logs

    def describe(self) -> dict:
        return {"kind": "clip", "model": self.model.config.to_dict()}


@dataclass
class CLIPRun:
    """The choices of a mini-CLIP training run (TrainConfig holds the loop's)."""

    resolution: int = 32
    min_objects: int = 1
    max_objects: int = 2  # two objects give relations ("left of", "above", ...)
    scenes: int = 50_000  # rendered once; captions and negatives are drawn afresh every visit
    data_seed: int = 0
    hard_negatives: bool = True
    relation_negatives: float = 0.2  # share of two-object hard negatives that swap the objects
    model: MiniCLIPConfig = field(default_factory=MiniCLIPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def shapes_config(self) -> ShapesConfig:
        return ShapesConfig(
            resolution=self.resolution, min_objects=self.min_objects, max_objects=self.max_objects
        )


def run_clip(run: CLIPRun) -> tuple[MiniCLIP, TrainResult]:
    """Train, save `<out>/model` (the EMA weights when there are some), return that model."""
    from hwaksan.train.clip_data import CaptionedScenes

    run.model.vision.resolution = run.resolution
    if not run.model.text.vocab:  # a mini-CLIP for the shapes world reads the world's words
        run.model.text.vocab = shapes_vocabulary()
    seed_everything(run.train.seed)  # before anything random is made: one seed, one run
    model = MiniCLIP(run.model)
    data = CaptionedScenes(
        run.shapes_config(), run.scenes, run.data_seed, run.relation_negatives, run.train.progress
    )
    result = train(CLIPRecipe(model, run.hard_negatives), data, run.train)
    trained = result.ema_model if result.ema_model is not None else result.model
    if result.is_main:
        info = {
            "data": {"name": "shapes", "shapes_config": run.shapes_config().to_dict(),
                     "scenes": run.scenes, "seed": run.data_seed},
            "hard_negatives": run.hard_negatives,
            "relation_negatives": run.relation_negatives,
            "steps": result.step,
            "train": {k: v for k, v in asdict(run.train).items() if k not in ("resume", "out_dir")},
            "temperature": math.exp(-float(trained.logit_scale)),
        }  # fmt: skip
        save_mini_clip(trained, Path(run.train.out_dir) / "model", info)
    return trained.eval(), result
