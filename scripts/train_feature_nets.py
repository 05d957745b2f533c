"""Retrain the evaluation networks that ship in hwaksan/weights/eval/ (seeded, CPU, minutes).

    python scripts/train_feature_nets.py                 # both
    python scripts/train_feature_nets.py --only digits   # the digit classifier only

Prints held-out accuracies and stores them in each network's JSON config.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from hwaksan.data import digits
from hwaksan.nets.features import (
    FeatureCNN,
    digits_classifier_config,
    save_feature_net,
    shapes_features_config,
)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels, filling with background (-1)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def fit(net: FeatureCNN, next_batch, loss_fn, steps: int, lr: float, name: str) -> None:
    """AdamW with cosine decay over `steps`; `next_batch(step)` -> (images, targets)."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    bar = tqdm(range(steps), desc=name)
    for step in bar:
        images, targets = next_batch(step)
        loss = loss_fn(net(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    net.eval()


@torch.no_grad()
def set_feature_scale(net: FeatureCNN, images: torch.Tensor) -> None:
    """Make the shipped features unit-RMS on `images` (keeps FD / KID numbers on one scale)."""
    net.config.feature_scale = 1.0
    features = torch.cat([net.features(batch) for batch in images.split(512)])
    net.config.feature_scale = features.square().mean().sqrt().item()


def train_digits(seed: int, steps: int) -> float:
    """The digit classifier on the train split (16x16, shifts of up to 2 px); held-out accuracy."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, y_train = digits.load_digits_tensors("train", resolution=16)
    x_test, y_test = digits.load_digits_tensors("heldout", resolution=16)
    net = FeatureCNN(digits_classifier_config())

    def next_batch(step: int):
        idx = torch.randint(0, len(y_train), (128,), generator=generator)
        return random_shift(x_train[idx], 2, generator), y_train[idx]

    fit(net, next_batch, F.cross_entropy, steps, 3e-3, "digits classifier")
    set_feature_scale(net, x_train)
    with torch.no_grad():
        accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    net.config.extra = dict(
        classes=list(digits.DIGIT_WORDS),
        heldout_accuracy=accuracy,
        heldout_n=len(y_test),
        seed=seed,
        steps=steps,
        input="digits resized bilinearly to 16x16, [-1, 1]",
    )
    save_feature_net(net, "digits_classifier")
    return accuracy


SHAPES_MULTI_LABEL = ("shape", "color", "size", "position", "pair")  # BCE heads; others CE


def shapes_vocabulary() -> dict[str, list[str]]:
    """The names behind every output of every head of the shapes feature net."""
    from hwaksan.data import shapes

    pairs = [f"{c} {s}" for s in shapes.ALL_SHAPES for c in shapes.COLORS]
    return dict(
        shape=list(shapes.ALL_SHAPES), color=list(shapes.COLORS), size=list(shapes.SIZES),
        position=list(shapes.POSITIONS), pair=pairs, count=["1", "2", "3"],
        background=list(shapes.BACKGROUNDS),
    )  # fmt: skip


def shapes_targets(scenes, vocabulary: dict[str, list[str]]) -> dict[str, torch.Tensor]:
    """Ground truth per head: multi-hot [N, K] for presence heads, class index [N] for others."""
    targets = {name: torch.zeros(len(scenes), len(vocabulary[name])) for name in SHAPES_MULTI_LABEL}
    count = torch.zeros(len(scenes), dtype=torch.long)  # number of objects - 1
    background = torch.zeros(len(scenes), dtype=torch.long)
    for i, scene in enumerate(scenes):
        for o in scene.objects:
            for name, word in (
                ("shape", o.shape),
                ("color", o.color),
                ("size", o.size),
                ("position", o.position),
                ("pair", f"{o.color} {o.shape}"),
            ):
                targets[name][i, vocabulary[name].index(word)] = 1.0
        count[i] = len(scene.objects) - 1
        background[i] = vocabulary["background"].index(scene.background)
    return {**targets, "count": count, "background": background}


def shapes_batch(n: int, seed: int, start: int, background: str):
    """n renders of the full world (all six shapes) on `background`, and their scenes."""
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(shapes=shapes.ALL_SHAPES, background=background)
    return shapes.render_batch(n, seed=seed, config=config, start=start)


def shapes_loss(net: FeatureCNN, logits: torch.Tensor, targets: dict) -> torch.Tensor:
    """Sum over heads: BCE for presence heads, cross-entropy for count and background."""
    loss = 0.0
    for name, head_logits in net.split_heads(logits).items():
        if name in SHAPES_MULTI_LABEL:
            loss = loss + F.binary_cross_entropy_with_logits(head_logits, targets[name])
        else:
            loss = loss + F.cross_entropy(head_logits, targets[name])
    return loss


@torch.no_grad()
def shapes_accuracies(net: FeatureCNN, images, targets) -> dict[str, float]:
    """Per head: exact-set accuracy (presence heads, threshold 0.5) or top-1 accuracy."""
    logits = torch.cat([net(batch) for batch in images.split(512)])
    result = {}
    for name, head_logits in net.split_heads(logits).items():
        if name in SHAPES_MULTI_LABEL:
            right = ((head_logits > 0).float() == targets[name]).all(1)
        else:
            right = head_logits.argmax(1) == targets[name]
        result[name] = round(right.float().mean().item(), 4)
    return result


def train_shapes(seed: int, steps: int) -> dict[str, float]:
    """The shapes feature net on fresh renders each step (half on black, half on the other
    backgrounds); exact-set accuracies per head on 2,000 held-out black-background scenes."""
    from hwaksan.data import shapes

    torch.manual_seed(seed)
    vocabulary = shapes_vocabulary()
    net = FeatureCNN(shapes_features_config({k: len(v) for k, v in vocabulary.items()}))
    others = [b for b in shapes.BACKGROUNDS if b != "black"]

    def next_batch(step: int):  # half black, half another background: BatchNorm wants iid batches
        black = shapes_batch(64, seed, start=step * 128, background="black")
        other = shapes_batch(64, seed, step * 128 + 64, background=others[step % len(others)])
        scenes = black[1] + other[1]
        return torch.cat([black[0], other[0]]), shapes_targets(scenes, vocabulary)

    fit(net, next_batch, lambda logits, t: shapes_loss(net, logits, t), steps, 2e-3, "shapes")
    set_feature_scale(net, shapes_batch(2000, seed, start=0, background="black")[0])
    test_images, test_scenes = shapes_batch(2000, seed + 1_000_003, 0, background="black")
    accuracies = shapes_accuracies(net, test_images, shapes_targets(test_scenes, vocabulary))
    net.config.extra = dict(
        vocabulary=vocabulary, multi_label=list(SHAPES_MULTI_LABEL), heldout_accuracy=accuracies,
        heldout_n=2000, seed=seed, steps=steps, batch_size=128,
        input="shapes renders (all six shapes, 1-3 objects), 32x32, [-1, 1]",
    )  # fmt: skip
    save_feature_net(net, "shapes_features")
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["digits", "shapes"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits-steps", type=int, default=1500)
    parser.add_argument("--shapes-steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only in (None, "digits"):
        start = time.time()
        accuracy = train_digits(args.seed, args.digits_steps)
        print(f"digits classifier: held-out accuracy {accuracy:.4f} ({time.time() - start:.0f} s)")
    if args.only in (None, "shapes"):
        start = time.time()
        accuracies = train_shapes(args.seed, args.shapes_steps)
        print(f"shapes features: held-out accuracies {accuracies} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
