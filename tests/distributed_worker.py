"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`: a few diffusion steps,
then each rank writes the data indices it saw and a digest of its weights to <out>/rank<r>.json.
With a second argument `gan`: a few autoencoder steps with the discriminator on from step 0, and
a digest of the autoencoder's and the discriminator's weights."""

from __future__ import annotations

import json
import os
import sys

import torch
from train_toys import BlobDataset, TinyDenoiser

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.loop import TrainConfig, train


class IndexedBlobs(BlobDataset):
    def __getitem__(self, i: int) -> dict:
        return {**super().__getitem__(i), "index": i}


class RecordingRecipe(DiffusionRecipe):
    """The diffusion recipe, noting which examples each step's batch held."""

    seen: list[list[int]] = []

    def loss(self, model, batch, step):
        self.seen.append(batch["index"].tolist())
        return super().loss(model, batch, step)


def main(out: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same init everywhere; DDP also broadcasts rank 0's weights
    recipe = RecordingRecipe(
        TinyDenoiser(channels=1, num_classes=4), NoiseSchedule.cosine(100), (1, 8, 8),
        num_classes=4, num_samples=0,
    )  # fmt: skip
    config = TrainConfig(out_dir=out, steps=4, batch_size=4, lr=1e-2, ema_decay=0.9,
                         checkpoint_every=2, progress=False)  # fmt: skip
    result = train(recipe, IndexedBlobs(n=32), config)
    rank = int(os.environ["RANK"])
    weights = {k: v.double().sum().item() for k, v in result.model.state_dict().items()}
    report = {"seen": recipe.seen, "weights": weights, "world_size": int(os.environ["WORLD_SIZE"])}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)


def main_gan(out: str) -> None:
    from hwaksan.nets.discriminator import DiscriminatorConfig, PatchDiscriminator
    from hwaksan.train.autoencoder import AutoencoderLossConfig, AutoencoderRecipe
    from hwaksan.train.autoencoder_run import AutoencoderRun, build_autoencoder
    from hwaksan.train.data import TensorItems

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(32, 3, 16, 16, generator=g) * 2 - 1
    run = AutoencoderRun(kind="kl", resolution=16, channels=(8, 8), perceptual=False)
    discriminator = PatchDiscriminator(DiscriminatorConfig(in_channels=3))
    recipe = AutoencoderRecipe(build_autoencoder(run, 3), discriminator, None,
                               AutoencoderLossConfig(disc_start=0), images[:4])  # fmt: skip
    config = TrainConfig(out_dir=out, steps=3, batch_size=4, lr=1e-3, ema_decay=None,
                         checkpoint_every=10, progress=False)  # fmt: skip
    result = train(recipe, TensorItems(images, torch.zeros(32, dtype=torch.long)), config)
    digest = {f"ae.{k}": v.double().sum().item() for k, v in result.model.state_dict().items()}
    d_state = discriminator.state_dict()
    digest.update({f"d.{k}": v.double().sum().item() for k, v in d_state.items()})
    with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump({"weights": digest, "world_size": int(os.environ["WORLD_SIZE"])}, f)


if __name__ == "__main__":
    main_gan(sys.argv[1]) if sys.argv[2:] == ["gan"] else main(sys.argv[1])
