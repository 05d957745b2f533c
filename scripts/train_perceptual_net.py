"""Train the shapes-world CNN whose features the autoencoders' perceptual (LPIPS-style) loss reads.

    python scripts/train_perceptual_net.py [--steps 400]

A `FeatureCNN` at 64 px trained on the shapes world's attribute heads (what shapes, colors,
sizes, positions are where), like the evaluation net but separate from it: the Frechet distance
must not measure the very features the autoencoder was trained to match. Writes
hwaksan/weights/perceptual/shapes_perceptual.{json,safetensors} with held-out accuracies.
"""

from __future__ import annotations

import argparse
import time

import torch
from train_feature_nets import (
    SHAPES_MULTI_LABEL,
    fit,
    shapes_accuracies,
    shapes_loss,
    shapes_targets,
    shapes_vocabulary,
)

from hwaksan.nets.features import FeatureCNN, FeatureNetConfig, save_feature_net
from hwaksan.nets.perceptual import SHAPES_NET, WEIGHTS_DIR


def batch_64(n: int, seed: int, start: int, background: str):
    """shapes_batch at 64 px (all six shapes, 1-3 objects)."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=64, shapes=shapes.ALL_SHAPES, background=background)
    return shapes.render_batch(n, seed=seed, config=config, start=start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.time()
    vocabulary = shapes_vocabulary()
    heads = {k: len(v) for k, v in vocabulary.items()}
    config = FeatureNetConfig(
        in_channels=3, resolution=64, widths=(16, 32, 64), feature_dim=64, heads=heads,
        norm="batch", global_pool=True,
    )  # fmt: skip
    net = FeatureCNN(config)
    n, seed = args.batch_size, args.seed

    def next_batch(step: int):  # black backgrounds (the autoencoders' data): BatchNorm's
        # running statistics must match every batch (alternating backgrounds broke them)
        images, scenes = batch_64(n, seed, start=step * n, background="black")
        return images, shapes_targets(scenes, vocabulary)

    fit(net, next_batch, lambda logits, t: shapes_loss(net, logits, t), args.steps, 2e-3, "net")
    test_images, test_scenes = batch_64(1000, seed + 1_000_003, 0, background="black")
    accuracies = shapes_accuracies(net, test_images, shapes_targets(test_scenes, vocabulary))
    net.config.extra = dict(
        purpose="perceptual loss of the autoencoders (not for evaluation)",
        vocabulary=vocabulary, multi_label=list(SHAPES_MULTI_LABEL), heldout_accuracy=accuracies,
        heldout_n=1000, seed=seed, steps=args.steps, batch_size=n,
        input="shapes renders (all six shapes, 1-3 objects, black), 64x64, [-1, 1]",
    )  # fmt: skip
    save_feature_net(net, SHAPES_NET, WEIGHTS_DIR)
    print(f"held-out accuracies {accuracies} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
