"""Text-conditional training: cached prompt encodings, prompt dropout, and cross-attention that
really steers the picture."""

from __future__ import annotations

import pytest
import torch
from text_stand_in import WordEncoder
from torch import nn
from torch.utils.data import Dataset

from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.loop import TrainConfig, train
from hwaksan.train.text import PromptCache, TextPrompts, shapes_text_data


def _unet(context_dim: int = 16, resolution: int = 8) -> nn.Module:
    return build_unet("tiny", resolution=resolution, channels=(16, 32), norm_groups=8,
                      num_heads=2, attention_resolutions=(4,), context_dim=context_dim)  # fmt: skip


def _randomize_zero_outputs(net: nn.Module) -> None:
    """Untrained U-Nets start with zero output layers; give them weights so inputs matter."""
    torch.manual_seed(1)
    for name, p in net.named_parameters():
        if "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)


def test_cached_trimmed_prompts_give_the_full_length_prediction():
    encoder, net = WordEncoder(), _unet()
    _randomize_zero_outputs(net)
    prompts = ["a red circle", "a big blue square above a circle", ""]
    cache = PromptCache(encoder, dtype=torch.float32)
    cond = cache(prompts)
    assert cond["context"].shape == (3, 8, 16)  # the longest prompt: <bos> + 7 words
    assert cond["context_mask"].sum(1).tolist() == [4, 8, 1]
    full = encoder(prompts)  # padded to max_length: the pipeline's context
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([10, 500, 900])
    with torch.no_grad():
        ours = net(x, t, **cond)
        expected = net(x, t, context=full.hidden_states, context_mask=full.attention_mask)
    assert torch.allclose(ours, expected, atol=1e-5)
    short = cache(["a red circle"])
    assert short["context"].shape == (1, 4, 16)  # padded to its own batch only
    assert torch.equal(short["context"][0], cond["context"][0, :4])


class _Recorder(nn.Module):
    """Returns zeros and remembers the contexts it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))
        self.contexts: list[torch.Tensor] = []

    def forward(self, x, t, context=None, context_mask=None):
        self.contexts.append(context)
        return x * self.scale


def test_prompt_dropout_replaces_captions_with_the_empty_prompt():
    model, encoder = _Recorder(), WordEncoder()
    prompts = TextPrompts(encoder, cond_drop_prob=0.25)
    recipe = DiffusionRecipe(model, NoiseSchedule.cosine(100), (1, 2, 2), conditioner=prompts)
    n = 20_000
    captions = ["a red circle", "a blue square"] * (n // 2)
    torch.manual_seed(0)
    recipe.loss(model, {"image": torch.zeros(n, 1, 2, 2), "caption": captions}, step=0)
    seen = model.contexts[-1]  # (n, 4, 16)
    cache = prompts.prompts
    empty, red = cache([""])["context"][0], cache(["a red circle"])["context"][0]
    dropped = (seen[:, 1:] == 0).all(-1).all(-1) & (seen[:, 0] == empty[0]).all(-1)
    assert abs(dropped.float().mean().item() - 0.25) < 0.015  # binomial sd 0.003
    kept = torch.arange(n)[~dropped]
    assert torch.equal(seen[kept[kept % 2 == 0][0]], red)  # the kept ones keep their caption
    assert len(cache) == 3  # two captions and "": each encoded once


def test_prompt_dropout_draws_come_before_the_losss_t_and_noise():
    """Bit-identical to the text recipe before composition: torch.rand for the dropped captions,
    then the loss's t and noise; the model gets the cached encodings of what was kept."""
    from hwaksan.diffusion.losses import diffusion_loss

    torch.manual_seed(0)
    unet, encoder, schedule = _unet(), WordEncoder(), NoiseSchedule.cosine(100)
    _randomize_zero_outputs(unet)
    prompts = TextPrompts(encoder, cond_drop_prob=0.5)
    recipe = DiffusionRecipe(unet, schedule, (3, 8, 8), conditioner=prompts, snr_gamma=5.0)
    captions = ["a red circle", "a blue square", "a green star", "two red circles"]
    batch = {"image": torch.rand(4, 3, 8, 8) * 2 - 1, "caption": captions}
    torch.manual_seed(1)
    ours, _ = recipe.loss(unet, batch, step=0)
    torch.manual_seed(1)
    drop = torch.rand(4) < 0.5
    kept = ["" if d else c for c, d in zip(captions, drop.tolist())]
    cond = PromptCache(encoder)(kept)
    expected = diffusion_loss(unet, batch["image"], schedule, prediction_type="v_prediction",
                              snr_gamma=5.0, cond=cond)  # fmt: skip
    assert drop.any() and not drop.all() and torch.equal(ours, expected)


def test_a_text_encoder_is_trained_exactly_when_the_model_is_text_conditioned():
    from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
    from hwaksan.train.text import TextConditioned

    encoder = MiniCLIPTextModel(MiniCLIPTextConfig(vocab=["red", "blue"], width=16, layers=1))
    joint = TextConditioned(_unet(), encoder)
    schedule = NoiseSchedule.cosine(10)
    with pytest.raises(HwaksanError, match="exactly when"):
        DiffusionRecipe(joint, schedule, (3, 8, 8), conditioner=TextPrompts(encoder))
    with pytest.raises(HwaksanError, match="exactly when"):
        DiffusionRecipe(_unet(), schedule, (3, 8, 8),
                        conditioner=TextPrompts(encoder, train_text_encoder=True))  # fmt: skip
    other = MiniCLIPTextModel(MiniCLIPTextConfig(vocab=["red", "blue"], width=16, layers=1))
    with pytest.raises(HwaksanError, match="its own text encoder"):
        DiffusionRecipe(joint, schedule, (3, 8, 8),
                        conditioner=TextPrompts(other, train_text_encoder=True))  # fmt: skip
    with pytest.raises(HwaksanError, match="not both"):
        DiffusionRecipe(_unet(), schedule, (3, 8, 8), conditioner=TextPrompts(encoder),
                        num_classes=3)  # fmt: skip


class _ColorWords(Dataset):
    """8x8 images that are all red or all blue, captioned with their color."""

    def __init__(self, n: int = 64) -> None:
        colors = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]])  # red, blue
        self.labels = torch.arange(n) % 2
        self.images = colors[self.labels][:, :, None, None].expand(n, 3, 8, 8)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "caption": ("a red one", "a blue one")[self.labels[i]]}


def test_cross_attention_makes_the_picture_follow_the_prompt(tmp_path):
    """The only path from the caption to the U-Net is cross-attention: after a short training,
    "red" prompts give red images and "blue" prompts blue ones."""
    torch.manual_seed(0)
    prompts = TextPrompts(WordEncoder(), sample_prompts=["a red one", "a blue one"],
                          sample_guidance_scale=2.0)  # fmt: skip
    recipe = DiffusionRecipe(_unet(), NoiseSchedule.cosine(100), (3, 8, 8), conditioner=prompts,
                             sample_steps=10, num_samples=8)  # fmt: skip
    config = TrainConfig(out_dir=str(tmp_path), steps=150, batch_size=16, lr=3e-3,
                         ema_decay=None, progress=False)  # fmt: skip
    result = train(recipe, _ColorWords(), config)
    images = recipe.sample_images(result.model.eval(), step=150)  # 4 "red", then 4 "blue"
    red_minus_blue = images[:, 0].mean((1, 2)) - images[:, 2].mean((1, 2))  # (8,)
    assert (red_minus_blue[:4] > 0.5).all() and (red_minus_blue[4:] < -0.5).all()
    assert (tmp_path / "samples" / "step_00000150.png").exists()


def test_shapes_text_data_pairs_each_scene_with_every_phrasing():
    from hwaksan.data.shapes import ShapesConfig, parse_caption, render_batch

    data = shapes_text_data(resolution=16, length=6, max_objects=2)
    config = ShapesConfig(resolution=16, min_objects=1, max_objects=2)
    images, scenes = render_batch(6, seed=0, config=config)
    assert len(data.dataset) == sum(len(s.captions) for s in scenes)
    assert data.num_classes is None and data.resolution == 16
    for image_index, caption in data.dataset.pairs:
        scene = scenes[image_index]
        assert caption in scene.captions
        assert parse_caption(caption).count == len(scene.objects)
    assert torch.equal(data.dataset[0]["image"], images[data.dataset.pairs[0][0]])


def test_scenes_sets_how_many_shapes_scenes_and_only_for_shapes(tmp_path):
    from hwaksan.train.text import text_training_data

    data = text_training_data("shapes", 16, scenes=5)
    assert data.info["length"] == 5 and len(data.dataset.images) == 5
    with pytest.raises(HwaksanError, match="--scenes"):
        text_training_data(str(tmp_path), 16, scenes=5)
    with pytest.raises(HwaksanError, match="--scenes"):
        text_training_data("shapes", 16, scenes=0)
