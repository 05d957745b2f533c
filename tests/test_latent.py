"""Latent diffusion: the scale factor, cached latents, the recipe's decoded grids, the latent
pipeline's save/load round trip, misfit errors, and `hwaksan train --autoencoder` end to end."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import hwaksan as hk
from hwaksan.cli import main
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.nets.autoencoder import AutoencoderConfig, AutoencoderKL, VQModel, save_autoencoder
from hwaksan.nets.autoencoder.base import check_latent_fit, latent_shape
from hwaksan.pipeline import Pipeline
from hwaksan.train.data import shapes_data
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.latent import latent_data, measure_latent_scale
from hwaksan.train.space import LatentSpace

TOY = ["--preset", "tiny", "--steps", "2", "--batch-size", "8", "--sample-every", "0",
       "--warmup", "1", "--sample-steps", "2", "--num-samples", "4"]  # fmt: skip


def _autoencoder(resolution: int = 16, cls=AutoencoderKL):
    """A random 16 px autoencoder with f = 2 and 4 latent channels (its latents are 4x8x8)."""
    torch.manual_seed(0)
    config = AutoencoderConfig(
        resolution=resolution, channels=(8, 16), latent_channels=4, num_embeddings=32
    )
    return cls(config).eval()


@pytest.fixture(scope="module")
def autoencoder_dir(tmp_path_factory):
    return save_autoencoder(
        _autoencoder(), tmp_path_factory.mktemp("ae") / "kl", dtype=torch.float32
    )


def test_latent_scale_is_one_over_the_std_of_every_element():
    latents = 0.25 * torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(0)) + 3.0
    scale = measure_latent_scale(latents)
    assert scale == pytest.approx(1.0 / float(latents.double().std()), rel=1e-12)
    assert float((latents * scale).std()) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("cls", [AutoencoderKL, VQModel])
def test_latent_data_caches_scaled_latents_of_every_image(cls):
    ae = _autoencoder(cls=cls)
    data = shapes_data(16, length=24, seed=3)
    latent = latent_data(ae, data, batch_size=10, progress=False)
    assert latent.sample_shape == (4, 8, 8) and latent.image_shape == (3, 16, 16)
    assert latent.data.num_classes == data.num_classes and len(latent.data.dataset) == 24
    with torch.no_grad():
        expected = ae.encode_latents(data.dataset.images)  # KL: the mode; VQ: pre-quantization
    torch.testing.assert_close(latent.data.dataset.images, expected * latent.latent_scale)
    assert float(latent.data.dataset.images.std()) == pytest.approx(1.0, rel=1e-5)
    assert latent.latent_scale == pytest.approx(1.0 / float(expected.double().std()), rel=1e-6)
    assert latent.data.dataset[5]["class_id"] == data.dataset[5]["class_id"]


def test_latent_space_encodes_and_decodes_through_the_scale():
    ae = _autoencoder()
    data = shapes_data(16, length=8)
    latent = latent_data(ae, data, progress=False)
    space = latent.space  # the recipe's space for these latents
    images = data.dataset.images
    torch.testing.assert_close(space.encode(images), latent.data.dataset.images)
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(space.decode(z), ae.decode(z / latent.latent_scale))


@pytest.mark.parametrize("cls", [AutoencoderKL, VQModel])
def test_recipe_decodes_its_progress_grid_through_the_scale(cls):
    ae = _autoencoder(cls=cls)  # VQ quantizes the diffusion output before decoding
    unet = UNet(unet_tiny(in_channels=4, resolution=8, attention_resolutions=()))
    schedule = hk.NoiseSchedule.cosine(100)
    recipe = DiffusionRecipe(
        unet, schedule, (4, 8, 8), space=LatentSpace(ae, 2.5), sample_steps=2, num_samples=3
    )
    images = recipe.sample_images(unet, 0)
    assert images.shape == (3, 3, 16, 16) and images.abs().max() <= 1
    latents = hk.sample(
        unet, (3, 4, 8, 8), schedule=schedule, sampler="ddim", steps=2,
        prediction_type="v_prediction", timestep_spacing="trailing",
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(images, ae.decode(latents / 2.5).clamp(-1, 1))
    assert recipe.describe()["latent_scale"] == 2.5


@pytest.mark.parametrize(
    "sample_shape, image_shape, unet_channels, message",
    [
        ((4, 4, 4), (3, 16, 16), 4, "does not fit the autoencoder"),
        ((3, 8, 8), (3, 16, 16), 3, "does not fit the autoencoder"),
        ((4, 8, 8), (3, 15, 15), 4, "multiples of 2"),
        ((4, 8, 8), (3, 16, 16), 3, "U-Net takes 3 channels"),
    ],
)
def test_a_latent_shape_that_does_not_fit_is_a_clear_error(
    sample_shape, image_shape, unet_channels, message
):
    unet = UNet(unet_tiny(in_channels=unet_channels, resolution=8, attention_resolutions=()))
    with pytest.raises(HwaksanError, match=message):
        Pipeline(
            unet=unet, schedule=hk.NoiseSchedule.cosine(100), prediction_type="v_prediction",
            image_shape=image_shape, sample_shape=sample_shape, autoencoder=_autoencoder(),
        )  # fmt: skip


def test_latent_shape_follows_the_downsampling_factor():
    ae = _autoencoder(resolution=32)
    assert latent_shape(ae, (3, 32, 32)) == (4, 16, 16)
    check_latent_fit(ae, (4, 16, 16), (3, 32, 32))  # fits: no error


@pytest.fixture(scope="module")
def trained(tmp_path_factory, autoencoder_dir):
    out = tmp_path_factory.mktemp("latent")
    args = ["train", "--data", "shapes", "--resolution", "16", "--autoencoder",
            str(autoencoder_dir), "--out", str(out), *TOY]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_train_with_an_autoencoder_saves_a_latent_model_that_loads_and_samples(trained, tmp_path):
    config = json.loads((trained / "model" / "config.json").read_text())
    assert config["sample_shape"] == [4, 8, 8] and config["image_shape"] == [3, 16, 16]
    assert config["modules"]["autoencoder"]["class"] == "AutoencoderKL"
    assert config["unet"]["in_channels"] == 4 and config["unet"]["resolution"] == 8
    images = shapes_data(16, length=20_000, seed=0).dataset.images  # what `train` trained on
    with torch.no_grad():  # the scale is measured on the training set: 1 / std of its latents
        expected = measure_latent_scale(_autoencoder().encode_latents(images))
    assert config["latent_scale"] == pytest.approx(expected, rel=1e-6)

    pipe = hk.load(trained, device="cpu")
    assert pipe.autoencoder is not None and pipe.latent_scale == config["latent_scale"]
    images = pipe.generate(3, steps=2, seed=1, output_type="pt")
    assert images.shape == (3, 3, 16, 16)
    x_T = torch.randn((3, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    latents = hk.sample(
        pipe.unet, (3, 4, 8, 8), schedule=pipe.schedule, sampler="ddim", steps=2,
        prediction_type=pipe.prediction_type, timestep_spacing=pipe.timestep_spacing, x_T=x_T,
    )  # fmt: skip
    with torch.no_grad():  # the sampler makes latents; the pipeline decodes them over the scale
        decoded = _autoencoder().decode(latents / config["latent_scale"]).clamp(-1, 1)
    torch.testing.assert_close(images, decoded, atol=1e-5, rtol=1e-4)

    grid = tmp_path / "grid.png"
    result = CliRunner().invoke(
        main, ["sample", str(trained), "-n", "4", "--steps", "2", "--out", str(grid),
               "--scale", "1"], catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (2 * 17 + 1, 2 * 17 + 1)


def test_a_folder_with_a_misfit_latent_shape_fails_to_load_with_one_line(trained, tmp_path):
    import shutil

    folder = shutil.copytree(trained / "model", tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["sample_shape"] = [4, 4, 4]
    (folder / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["sample", str(folder), "-n", "1"])
    assert result.exit_code == 2
    assert "does not fit the autoencoder" in result.output


def test_train_refuses_an_autoencoder_that_does_not_fit_the_data(autoencoder_dir, tmp_path):
    args = ["train", "--data", "digits", "--autoencoder", str(autoencoder_dir),
            "--out", str(tmp_path), *TOY]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "cannot encode" in result.output


def test_the_shipped_latent_model_samples_64px_shapes():
    """Measured (benchmarks/latent_vs_pixel.py): DDIM-20 validity 66% on 64 samples; the
    autoencoder's reconstructions bound it (B measured 94% detector agreement)."""
    from hwaksan.data import shapes
    from hwaksan.eval.shapes_score import validity_coverage

    pipe = hk.load("shapes_ldm", device="cpu")
    assert pipe.sample_shape == (4, 16, 16) and pipe.image_shape == (3, 64, 64)
    images = pipe.generate(32, steps=20, seed=1, output_type="pt")
    config = shapes.ShapesConfig(**pipe.data["shapes_config"])
    assert validity_coverage(images, config)["validity"] >= 0.5


def test_latent_data_keeps_every_caption_of_every_image():
    from hwaksan.train.text import shapes_text_data

    data = shapes_text_data(resolution=16, length=6)
    latent = latent_data(_autoencoder(), data, progress=False)
    assert latent.data.dataset.pairs == data.dataset.pairs  # (image index, caption), all kept
    assert len(latent.data.dataset.images) == 6  # each image encoded once, not once per caption
    with torch.no_grad():
        expected = _autoencoder().encode_latents(data.dataset.images) * latent.latent_scale
    item = latent.data.dataset[3]
    assert item["caption"] == data.dataset[3]["caption"]
    torch.testing.assert_close(item["image"], expected[data.dataset.pairs[3][0]])


def test_text_to_image_in_latent_space_end_to_end(autoencoder_dir, tmp_path):
    """`--text-encoder` with `--autoencoder`: a captioned folder, encoded once, trained, saved
    with both frozen parts; prompts steer the decoded pictures."""
    from captioned_folder import save_tiny_mini_clip, write_captioned_shapes

    data = write_captioned_shapes(tmp_path / "data")
    save_tiny_mini_clip(tmp_path / "clip")
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--resolution", "16", "--autoencoder",
            str(autoencoder_dir), "--text-encoder", str(tmp_path / "clip"), "--channels", "16,32",
            "--context-layers", "1", "--out", str(out), *TOY]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "model" / "config.json").read_text())
    assert set(config["modules"]) == {"autoencoder", "text_encoder"}
    assert config["sample_shape"] == [4, 8, 8] and config["unet"]["context_dim"] == 32

    pipe = hk.load(out / "model", device="cpu")
    for name, p in pipe.unet.named_parameters():  # 2 steps barely move the zero output layers
        if "proj_out" in name or "conv_out" in name:
            torch.nn.init.normal_(p, std=0.1)
    red = pipe.generate(2, steps=2, prompt="a red circle", output_type="pt")
    blue = pipe.generate(2, steps=2, prompt="a blue square", output_type="pt")
    assert red.shape == (2, 3, 16, 16) and not torch.allclose(red, blue, atol=1e-4)
