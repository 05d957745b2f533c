"""The autoencoder recipe on the shared loop: two optimizers, the GAN switching on after its
warm-up, exact resume of the discriminator and its optimizer, and `hwaksan train-autoencoder`."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from hwaksan.cli import main
from hwaksan.nets.autoencoder import load_autoencoder
from hwaksan.train.autoencoder import AutoencoderLossConfig
from hwaksan.train.autoencoder_run import AutoencoderRun, run_autoencoder
from hwaksan.train.data import TensorItems, TrainingData
from hwaksan.train.loop import TrainConfig


def _data(n: int = 24) -> TrainingData:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, 16, 16, generator=g) * 2 - 1
    return TrainingData(TensorItems(images, torch.zeros(n, dtype=torch.long)), 3, 16)


def _run(kind: str, out, steps: int, resume: bool = False) -> AutoencoderRun:
    return AutoencoderRun(
        kind=kind, resolution=16, channels=(8, 8, 8), num_embeddings=16, perceptual=False,
        losses=AutoencoderLossConfig(disc_start=2, restart_every=2, restart_threshold=0.99),
        train=TrainConfig(out_dir=str(out), steps=steps, batch_size=8, lr=1e-3, ema_decay=None,
                          checkpoint_every=2, progress=False, log_every=1, resume=resume),
    )  # fmt: skip


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_second_optimizer_resumes_exactly(tmp_path, kind):
    data = _data()
    straight, _ = run_autoencoder(_run(kind, tmp_path / "a", 5), data)
    run_autoencoder(_run(kind, tmp_path / "b", 3), data)
    torch.manual_seed(123)  # a resumed run must not depend on the state it starts in
    resumed, _ = run_autoencoder(_run(kind, tmp_path / "b", 5, resume=True), data)
    for (name, x), y in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(x, y), name
    a, b = _rows(tmp_path / "a" / "log.csv"), _rows(tmp_path / "b" / "log.csv")
    assert [r["loss"] for r in a] == [r["loss"] for r in b] and len(a) == 5
    assert [r["d_loss"] for r in a] == [r["d_loss"] for r in b]
    # the GAN is off for the first disc_start steps, then on; VQ logs its codebook usage
    assert all(float(r["d_loss"]) == 0 and float(r["d_weight"]) == 0 for r in a[:2])
    assert all(float(r["d_loss"]) > 0 and float(r["d_weight"]) > 0 for r in a[2:])
    if kind == "vq":
        assert all(1 <= float(r["perplexity"]) <= 16 for r in a)
        assert sum(float(r["restarted"]) for r in a) > 0  # threshold 0.99: unused codes restart


def test_resume_restores_the_discriminator_not_a_fresh_one(tmp_path):
    data = _data()
    run_autoencoder(_run("kl", tmp_path / "a", 3), data)
    from hwaksan.train import checkpoint as ckpt

    found = ckpt.load_checkpoint(tmp_path / "a" / "checkpoints")
    assert {"extra_discriminator", "extra_d_optimizer"} <= set(found.tensors)
    assert found.state["extra"]["d_optimizer"]["param_groups"][0]["lr"] == 2e-4
    # the d-optimizer has moments: the discriminator was trained (step 2 >= disc_start)
    assert any(k.endswith("exp_avg") for k in found.tensors["extra_d_optimizer"])


def test_cli_trains_saves_and_reports_errors(tmp_path):
    out = tmp_path / "ae"
    args = ["train-autoencoder", "--kind", "vq", "--data", "digits", "--resolution", "16",
            "--channels", "8,8,8", "--num-embeddings", "16", "--steps", "3", "--batch-size", "8",
            "--disc-start", "1", "--warmup", "1", "--sample-every", "0",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model = load_autoencoder(out)  # a run folder resolves to its model/
    assert model.latent_shape == (4, 4, 4) and model.config.in_channels == 1
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["class"] == "VQModel" and config["data"]["steps"] == 3
    assert (out / "samples").is_dir() and (out / "loss.png").exists()
    bad = CliRunner().invoke(main, [*args[:-2], "--channels", "8,x", "--out", str(tmp_path / "b")])
    assert (
        bad.exit_code == 2
        and bad.output.strip().startswith("error: ")
        and "--channels" in bad.output
    )
