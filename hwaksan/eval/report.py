"""One call that scores generated images against real ones: what `hwaksan eval` prints.

Frechet distance and KID on a feature net, plus the data set's own checks: for the shapes
world validity / coverage (and the prompt score when captions are known), for digits the
classifier's predicted-class histogram (and accuracy when the intended labels are known).
"""

from __future__ import annotations

import torch

from hwaksan.eval.feature_extractors import FeatureSpec, extract_features
from hwaksan.eval.frechet import frechet_distance_from_features, kid_from_features


def reference_images(data: str, n: int, seed: int, resolution: int, **shapes_options):
    """Up to `n` real images [N, C, R, R] in [-1, 1] of "shapes", "digits" or a folder path.

    shapes: `n` fresh renders from `seed` (`shapes_options` go to ShapesConfig); digits: the first
    `n` of all 1,797 in a seeded order; folder: its first `n` images (sorted by path).
    """
    if data == "shapes":
        from hwaksan.data import shapes

        config = shapes.ShapesConfig(resolution=resolution, **shapes_options)
        return shapes.render_batch(n, seed=seed, config=config)[0]
    if data == "digits":
        from hwaksan.data.digits import load_digits_tensors

        images, _ = load_digits_tensors("all", resolution=resolution)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        return images[order[:n]]
    from hwaksan.data.folder import ImageFolder

    return ImageFolder(data, resolution, captions=False).images()[:n]


def evaluate(
    images: torch.Tensor,
    real_images: torch.Tensor,
    data: str,
    feature: FeatureSpec,
    captions: list[str] | None = None,
    labels: list[int] | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    **shapes_options,
) -> dict:
    """Metrics of `images` against `real_images` (both [N, C, H, W] in [-1, 1]) as a flat dict."""
    fake, real = extract_features(images, feature), extract_features(real_images, feature)
    kid_mean, kid_std = kid_from_features(fake, real, kid_subset_size, kid_subsets)
    result = dict(
        frechet_distance=frechet_distance_from_features(fake, real),
        kid_mean=kid_mean,
        kid_std=kid_std,
    )
    if data == "shapes":
        from hwaksan.data import shapes
        from hwaksan.eval import shapes_score

        config = shapes.ShapesConfig(resolution=images.shape[-1], **shapes_options)
        checks = shapes_score.validity_coverage(images, config)
        result.update({k: v for k, v in checks.items() if k != "n"})
        if captions is not None and all(captions):
            claims = shapes_score.prompt_score(captions, images)
            result.update({f"prompt_{k}": v for k, v in claims.items() if k != "n"})
    if data == "digits":
        from hwaksan.eval.digits_score import digits_accuracy, digits_histogram

        result["predicted_histogram"] = digits_histogram(images)
        if labels is not None:
            result["class_accuracy"] = digits_accuracy(images, labels)
    return result
