"""Every folder kind through one writer and one reader: atomic writes, "this folder holds X,
load it with Y" for every kind, the pipeline's fields from one table, any registered denoiser
class, and the shipped folders written by older code still loading."""

from __future__ import annotations

import json

import pytest
import torch

import hwaksan as hk
from hwaksan import components, model_folder
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.nets.autoencoder import AutoencoderConfig, AutoencoderKL, save_autoencoder
from hwaksan.nets.autoencoder.io import SHIPPED as AUTOENCODERS
from hwaksan.nets.classifier import NoisyClassifier, NoisyClassifierConfig, save_classifier
from hwaksan.nets.text.mini_clip import (
    MiniCLIP,
    MiniCLIPConfig,
    MiniCLIPTextConfig,
    load_mini_clip,
    save_mini_clip,
)
from hwaksan.pipeline import Pipeline
from hwaksan.registry import SHIPPED, WEIGHTS_DIR


class DoubledUNet(UNet):
    """A registered denoiser class of its own: the U-Net's prediction, doubled."""

    def forward(self, x, t, **kwargs):
        return 2 * super().forward(x, t, **kwargs)


def _pipe(unet_class=UNet) -> Pipeline:
    torch.manual_seed(0)
    unet = unet_class(unet_tiny(in_channels=1, resolution=8, attention_resolutions=()))
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="epsilon", image_shape=(1, 8, 8), steps=3,
                    timestep_spacing="linspace", layout_scale=0.0, data={"note": 1})  # fmt: skip


def _save_every_kind(root):
    """One tiny folder of each kind, by the loader that reads it."""
    _pipe().save(root / "diffusion")
    save_classifier(NoisyClassifier(NoisyClassifierConfig(in_channels=1, resolution=8,
                    channels=(8,), norm_groups=4, num_classes=2)), root / "classifier")  # fmt: skip
    save_autoencoder(AutoencoderKL(AutoencoderConfig(resolution=8, channels=(8, 8),
                     norm_groups=4)), root / "autoencoder")  # fmt: skip
    text = MiniCLIPTextConfig(vocab=["a", "b"], max_length=4, width=8, layers=1, heads=2)
    save_mini_clip(MiniCLIP(MiniCLIPConfig(text=text)), root / "mini_clip")
    return {
        "diffusion": hk.load,
        "classifier": hk.load_classifier,
        "autoencoder": hk.load_autoencoder,
        "mini_clip": load_mini_clip,
    }


def test_every_kind_loads_with_its_loader_and_names_the_right_one_to_others(tmp_path):
    loaders = _save_every_kind(tmp_path)
    hows = {kind: how for kind, (_, how) in components.KINDS.items()}
    for kind, loader in loaders.items():
        loader(tmp_path / kind)
        for other, other_loader in loaders.items():
            if other != kind:
                with pytest.raises(HwaksanError, match="holds") as e:
                    other_loader(tmp_path / kind)
                assert hows[f"hwaksan.{kind}"] in str(e.value)
                assert "\n" not in str(e.value)


def test_a_failed_write_leaves_the_old_folder_whole(tmp_path):
    folder = tmp_path / "clf"
    save_classifier(NoisyClassifier(NoisyClassifierConfig(in_channels=1, resolution=8,
                    channels=(8,), norm_groups=4, num_classes=2)), folder)  # fmt: skip
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    class Broken(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        components.write_folder(folder, {"model_kind": "hwaksan.classifier"}, {"x": Broken()})
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    hk.load_classifier(folder)


def test_the_pipeline_fields_round_trip_from_one_table(tmp_path):
    pipe = _pipe()
    pipe.save(tmp_path / "m")
    loaded = hk.load(tmp_path / "m")
    for name in model_folder.FIELDS:
        assert getattr(loaded, name) == getattr(pipe, name), name
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for name in ("sample_shape", "timestep_spacing", "layout_scale", "data"):
        del config[name]  # a folder written before these fields existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    old = hk.load(tmp_path / "m")
    assert old.timestep_spacing == "leading" and old.data == {} and old.sample_shape == (1, 8, 8)


def test_any_registered_denoiser_class_saves_and_loads(tmp_path, monkeypatch):
    with pytest.raises(HwaksanError, match="CLASSES"):
        _pipe(DoubledUNet).save(tmp_path / "m")
    monkeypatch.setitem(components.CLASSES, "DoubledUNet", "test_model_folders:DoubledUNet")
    pipe = _pipe(DoubledUNet)
    pipe.save(tmp_path / "m")
    loaded = hk.load(tmp_path / "m")
    assert type(loaded.unet) is DoubledUNet
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 70])
    with torch.no_grad():
        assert torch.equal(loaded.unet(x, t), pipe.unet(x, t))
        assert torch.equal(loaded.unet(x, t), 2 * UNet.forward(pipe.unet, x, t))


LOADERS = {
    "hwaksan.diffusion": lambda name: hk.load(name, device="cpu"),
    "hwaksan.classifier": hk.load_classifier,
    "hwaksan.autoencoder": hk.load_autoencoder,
    "hwaksan.mini_clip": load_mini_clip,
}


@pytest.mark.parametrize("name", [*SHIPPED, *AUTOENCODERS, "mini_clip"])
def test_shipped_folders_written_by_older_code_still_load(name):
    kind = json.loads((WEIGHTS_DIR / name / "config.json").read_text())["model_kind"]
    assert isinstance(LOADERS[kind](name), torch.nn.Module | Pipeline)
