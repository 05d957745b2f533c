"""The training loop and its recipes: `train(recipe, dataset, TrainConfig(...))`."""

from hwaksan.train.ema import EMA
from hwaksan.train.loop import Recipe, TrainConfig, TrainResult, train

__all__ = ["EMA", "Recipe", "TrainConfig", "TrainResult", "train"]
