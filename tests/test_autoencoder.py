"""Autoencoders: encode/decode shapes at f = 4 and 8, the Gaussian posterior, latent shape errors,
and save/load round trips."""

from __future__ import annotations

import json

import pytest
import torch

from hwaksan.errors import HwaksanError
from hwaksan.nets.autoencoder import (
    AutoencoderConfig,
    AutoencoderKL,
    DiagonalGaussian,
    VQModel,
    load_autoencoder,
    save_autoencoder,
)


def _config(levels: int = 3, **kw) -> AutoencoderConfig:
    widths = (8, 16, 16, 16)[:levels]
    return AutoencoderConfig(resolution=32, channels=widths, norm_groups=4, **kw)


@pytest.mark.parametrize("cls", [AutoencoderKL, VQModel])
@pytest.mark.parametrize("levels, f", [(3, 4), (4, 8)])
def test_encode_decode_shapes_keep_the_spatial_layout(cls, levels, f):
    torch.manual_seed(0)
    model = cls(_config(levels, latent_channels=4))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = model.encode_latents(x)
    assert model.downsample_factor == f and model.latent_channels == 4
    assert z.shape == (2, 4, 32 // f, 32 // f) == (2, *model.latent_shape)
    assert model.decode(z).shape == x.shape
    recon = model(x)[0]
    assert recon.shape == x.shape


def test_kl_posterior_sample_mode_and_closed_form_kl():
    torch.manual_seed(0)
    moments = torch.randn(3, 8, 4, 4)
    q = DiagonalGaussian(moments)
    mean, logvar = moments.chunk(2, 1)
    assert torch.equal(q.mode(), mean)
    a = q.sample(torch.Generator().manual_seed(1))
    b = q.sample(torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, mean)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, mean + (0.5 * logvar).exp() * eps)
    normal = torch.distributions.Normal
    reference = torch.distributions.kl_divergence(
        normal(mean, (0.5 * logvar).exp()), normal(torch.zeros_like(mean), 1.0)
    ).sum((1, 2, 3))
    torch.testing.assert_close(q.kl(), reference, rtol=1e-5, atol=1e-5)


def test_kl_encode_latents_is_the_mode_without_a_generator():
    torch.manual_seed(0)
    model = AutoencoderKL(_config())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(model.encode_latents(x), model.encode(x).mean)
    sampled = model.encode_latents(x, torch.Generator().manual_seed(0))
    assert not torch.equal(sampled, model.encode(x).mean)


def test_bad_configs_are_clear_errors():
    with pytest.raises(HwaksanError, match="not divisible by f"):
        AutoencoderKL(AutoencoderConfig(resolution=36, channels=(8, 16, 16, 16), norm_groups=4))
    with pytest.raises(HwaksanError, match="unknown autoencoder config keys"):
        AutoencoderConfig.from_dict({"widths": [8]})


@pytest.mark.parametrize("cls", [AutoencoderKL, VQModel])
def test_save_load_round_trip(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(_config(num_embeddings=32)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    save_autoencoder(model, tmp_path / "fp32", {"note": "test"}, dtype=torch.float32)
    loaded = load_autoencoder(tmp_path / "fp32")
    assert type(loaded) is cls and loaded.config == model.config
    with torch.no_grad():
        z = model.encode_latents(x)
        assert torch.equal(loaded.encode_latents(x), z)
        assert torch.equal(loaded.decode(z), model.decode(z))
    config = json.loads((tmp_path / "fp32" / "config.json").read_text())
    assert config["model_kind"] == "hwaksan.autoencoder" and config["class"] == cls.__name__
    assert config["latent_shape"] == [4, 8, 8] and config["data"] == {"note": "test"}
    save_autoencoder(model, tmp_path / "fp16")  # the default: fp16 weights, half the bytes
    half = load_autoencoder(tmp_path / "fp16")
    with torch.no_grad():
        torch.testing.assert_close(half.decode(z), model.decode(z), atol=5e-3, rtol=1e-2)


def test_loading_errors_are_one_line(tmp_path):
    with pytest.raises(HwaksanError, match="no autoencoder"):
        load_autoencoder(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"model_kind": "hwaksan.diffusion"}))
    with pytest.raises(HwaksanError, match="not an autoencoder config"):
        load_autoencoder(tmp_path)
    model = AutoencoderKL(_config())
    save_autoencoder(model, tmp_path / "ae")
    (tmp_path / "ae" / "autoencoder.safetensors").write_bytes(b"garbage")
    with pytest.raises(HwaksanError, match="not a readable safetensors"):
        load_autoencoder(tmp_path / "ae")


def _heldout(n: int = 48):
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=64)  # base world, 1-3 objects: what latents model
    return shapes.render_batch(n, seed=2_000_003, config=config)


def _reconstruction_scores(name: str, n: int = 48) -> tuple[float, float]:
    """(mean PSNR in dB, fraction the detector reads as the original) on held-out scenes."""
    from hwaksan.data import shapes

    images, _ = _heldout(n)
    model = load_autoencoder(name)
    with torch.no_grad():
        recon = model.decode(model.encode_latents(images)).clamp(-1, 1)
    mse = (recon - images).square().mean((1, 2, 3)) / 4  # in [0, 1] units
    psnr = float((10 * torch.log10(1 / mse)).mean())

    def key(image):
        return sorted((o.shape, o.color, o.size, o.position) for o in shapes.detect(image))

    agree = sum(key(r) == key(x) for r, x in zip(recon, images)) / n
    return psnr, agree


def test_shipped_kl_autoencoder_reconstructs_held_out_scenes():
    # benchmarks/autoencoders.py on 1,000 scenes: 35.4 dB, detector agreement 99.2%
    psnr, agree = _reconstruction_scores("autoencoder_kl")
    assert psnr > 33 and agree >= 0.95


def test_shipped_vq_autoencoder_reconstructs_held_out_scenes_with_a_used_codebook():
    # benchmarks/autoencoders.py on 1,000 scenes: 34.6 dB, agreement 98.8%, 256/256 codes used
    psnr, agree = _reconstruction_scores("autoencoder_vq")
    assert psnr > 33 and agree >= 0.95
    images, _ = _heldout(16)
    model = load_autoencoder("autoencoder_vq")
    with torch.no_grad():
        codes = model.quantize(model.encode_latents(images)).indices
    assert codes.unique().numel() > 128  # measured 251 of 256: no collapse to a few codes
