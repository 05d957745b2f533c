"""Optional pipeline components: saved and rebuilt by class name, decoded, and conditioned on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import hwaksan as hk
from hwaksan import components
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Pipeline


@dataclass
class _ScaleConfig:
    channels: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class ScaleDecoder(nn.Module):
    """A stand-in autoencoder: decode(z) = 2 * z (per-channel learnable gain)."""

    def __init__(self, config: _ScaleConfig):
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.full((1, config.channels, 1, 1), 2.0))

    @classmethod
    def from_config(cls, d: dict) -> ScaleDecoder:
        return cls(_ScaleConfig(**d))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.gain * z


class FrozenWordEncoder(nn.Module):
    """A stand-in text encoder that rebuilds itself (persistent_weights = False)."""

    persistent_weights = False
    max_length, hidden_size = 4, 8

    def __init__(self, config: _ScaleConfig):
        super().__init__()
        self.config = config
        self.table = nn.Embedding(64, self.hidden_size)
        nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(0))

    @classmethod
    def from_config(cls, d: dict) -> FrozenWordEncoder:
        return cls(_ScaleConfig(**d))

    def forward(self, prompts: list[str]):
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        for i, p in enumerate(prompts):
            words = [sum(map(ord, w)) % 63 + 1 for w in p.split()][: self.max_length]
            ids[i, : len(words)] = torch.tensor(words, dtype=torch.long)
        hidden = self.table(ids)
        return SimpleNamespace(hidden_states=hidden, attention_mask=ids > 0, pooled=hidden.mean(1))


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    monkeypatch.setitem(components.CLASSES, "ScaleDecoder", f"{__name__}:ScaleDecoder")
    monkeypatch.setitem(components.CLASSES, "FrozenWordEncoder", f"{__name__}:FrozenWordEncoder")


def _unet(**kw) -> UNet:
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=2, resolution=8, attention_resolutions=(), **kw))
    with torch.no_grad():  # a random init outputs zeros (zero-initialized out conv); perturb it
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unet.eval()


def _latent_pipe() -> Pipeline:
    return Pipeline(
        unet=_unet(), schedule=hk.NoiseSchedule.cosine(100), prediction_type="v_prediction",
        image_shape=(2, 8, 8), steps=4, autoencoder=ScaleDecoder(_ScaleConfig()),
        latent_scale=4.0,
    )  # fmt: skip


def test_latent_pipeline_decodes_latents_over_the_scale_and_round_trips(tmp_path):
    pipe = _latent_pipe()
    images = pipe.generate(3, seed=1, output_type="pt")
    pipe.autoencoder = None
    latents = pipe.generate(3, seed=1, output_type="pt")
    inside = latents.abs() < 1  # where the clamp of the pixel-space output did not bite
    assert inside.float().mean() > 0.3
    torch.testing.assert_close(images[inside], 2.0 * latents[inside] / 4.0)

    pipe = _latent_pipe()
    with torch.no_grad():
        pipe.autoencoder.gain.fill_(3.0)
    pipe.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["modules"]["autoencoder"]["class"] == "ScaleDecoder"
    assert config["latent_scale"] == 4.0 and "autoencoder" in config["components"]
    loaded = hk.load(tmp_path / "m", device="cpu")
    assert float(loaded.autoencoder.gain[0, 0]) == 3.0
    torch.testing.assert_close(
        loaded.generate(2, seed=5, output_type="pt"), pipe.generate(2, seed=5, output_type="pt")
    )


def test_text_pipeline_prompts_change_the_output_and_the_encoder_rebuilds_itself(tmp_path):
    encoder = FrozenWordEncoder(_ScaleConfig())
    pipe = Pipeline(
        unet=_unet(context_dim=encoder.hidden_size), schedule=hk.NoiseSchedule.cosine(100),
        prediction_type="v_prediction", image_shape=(2, 8, 8), steps=4, text_encoder=encoder,
    )  # fmt: skip
    red = pipe.generate(2, prompt="a red circle", seed=0, output_type="pt")
    blue = pipe.generate(2, prompt="a blue square", seed=0, output_type="pt")
    assert (red - blue).abs().max() > 1e-4
    guided = pipe.generate(2, prompt="a red circle", guidance_scale=3.0, seed=0, output_type="pt")
    negative = pipe.generate(
        2, prompt="a red circle", negative_prompt="blue", guidance_scale=3.0, seed=0,
        output_type="pt",
    )  # fmt: skip
    assert (guided - red).abs().max() > 1e-4 and (guided - negative).abs().max() > 1e-4

    pipe.save(tmp_path / "t")
    assert not (tmp_path / "t" / "text_encoder.safetensors").exists()
    loaded = hk.load(tmp_path / "t", device="cpu")
    torch.testing.assert_close(
        loaded.generate(2, prompt="a red circle", seed=0, output_type="pt"), red
    )
    with pytest.raises(HwaksanError, match="one string or 2 strings"):
        pipe.generate(2, prompt=["a", "b", "c"])


def test_bad_component_entries_fail_in_one_line(tmp_path):
    _latent_pipe().save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    config["modules"]["autoencoder"]["class"] = "NoSuchNet"
    path.write_text(json.dumps(config))
    with pytest.raises(HwaksanError, match="unknown network class 'NoSuchNet'"):
        hk.load(tmp_path / "m")
    config["modules"] = {"teleporter": config["modules"]["autoencoder"]}
    path.write_text(json.dumps(config))
    with pytest.raises(HwaksanError, match="unknown component 'teleporter'"):
        hk.load(tmp_path / "m")


def test_prompts_and_guidance_need_a_model_that_takes_them():
    pipe = _latent_pipe()
    with pytest.raises(HwaksanError, match="not a text model"):
        pipe.generate(1, prompt="a red circle")
    with pytest.raises(HwaksanError, match="guidance_scale needs"):
        pipe.generate(1, guidance_scale=2.0)
    with pytest.raises(HwaksanError, match="needs a classifier"):
        pipe.generate(1, classifier_scale=2.0, class_labels=[0])


def test_loading_another_kind_of_folder_says_what_it_is_and_how_to_load_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_kind": "hwaksan.autoencoder"}))
    with pytest.raises(HwaksanError, match="holds an autoencoder.*hk.load_autoencoder"):
        hk.load(tmp_path)
    with pytest.raises(HwaksanError, match="holds a noise-aware classifier.*hk.load_classifier"):
        hk.load("digits_classifier_noisy")
