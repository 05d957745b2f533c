"""Scores for generated images: Frechet distance / KID on a feature net, digit class accuracy,
and the shapes-world checks (`hwaksan.eval.shapes_score`)."""

from hwaksan.eval.digits_score import digits_accuracy, digits_histogram, digits_predictions
from hwaksan.eval.feature_extractors import extract_features
from hwaksan.eval.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_inception_distance,
    kid_from_features,
)
from hwaksan.eval.report import evaluate, reference_images

__all__ = [
    "digits_accuracy", "digits_histogram", "digits_predictions", "evaluate", "extract_features",
    "frechet_distance", "frechet_distance_from_features", "frechet_distance_from_stats",
    "gaussian_stats", "kernel_inception_distance", "kid_from_features", "reference_images",
]  # fmt: skip
