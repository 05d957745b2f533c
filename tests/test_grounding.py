"""The token grounding loss: which caption tokens name which object, the loss on known maps, and a
text recipe that adds it (and trains the cross-attention with it)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from hwaksan.cli import main
from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.data.shapes.caption_parser import mention_phrases
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.train.diffusion import DiffusionRecipe
from hwaksan.train.grounding import (
    ObjectMasks,
    TokenGrounding,
    TokenGroundingLoss,
    grounding_loss,
)
from hwaksan.train.text import TextPrompts, shapes_text_data


def test_mention_phrases_are_the_words_that_name_each_object():
    assert mention_phrases("two small red circles above a disk") == [
        ("small red circles", "red", "circle"), ("disk", None, "circle")]  # fmt: skip
    assert mention_phrases("An image of one red plus sign left of a big blue box") == [
        ("red plus sign", "red", "cross"), ("big blue box", "blue", "square")]  # fmt: skip


def _encoder() -> MiniCLIPTextModel:
    torch.manual_seed(0)
    return MiniCLIPTextModel(
        MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=16, layers=1, heads=2)
    ).eval()


def test_targets_mark_each_mentions_tokens_with_its_objects():
    objects = [[("red", "circle"), ("blue", "square")], [("red", "circle"), ("red", "circle")]]
    masks = ObjectMasks(torch.zeros(2, 2, 4, 4), objects)
    grounding = TokenGrounding(masks, _encoder().tokenize, mention_phrases)
    captions = ["a red circle to the left of a blue square", "two red circles"]
    token_objects, got_masks = grounding.targets(captions, torch.tensor([0, 1]), 12)
    assert token_objects.shape == (2, 12, 2) and got_masks.shape == (2, 2, 4, 4)
    # "<bos> a red circle to the left of a blue square <eos>": red circle 2, 3; blue square 9, 10
    assert token_objects[0, :, 0].nonzero().flatten().tolist() == [2, 3]
    assert token_objects[0, :, 1].nonzero().flatten().tolist() == [9, 10]
    # "<bos> two red circles <eos>": both red circles are named by "red circles"
    assert token_objects[1, 2:4].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert token_objects[1].sum() == 4
    empty, _ = grounding.targets(["", "a green star"], torch.tensor([0, 0]), 12)
    assert empty.sum() == 0  # a dropped caption, and an object the image does not have


def test_grounding_loss_is_the_squared_share_of_attention_outside_the_mask():
    masks = torch.zeros(1, 1, 2, 2)
    masks[0, 0, 0, 0] = 1.0  # the object covers the top-left cell
    token_objects = torch.zeros(1, 3, 1)
    token_objects[0, 1, 0] = 1.0  # token 1 names it; tokens 0 and 2 name nothing
    probs = torch.full((1, 4, 3), 1 / 3)

    def loss(attention_of_token_1):
        p = probs.clone()
        p[0, :, 1] = attention_of_token_1
        return grounding_loss([(p, (2, 2))], token_objects, masks)

    assert float(loss(torch.tensor([0.9, 0.0, 0.0, 0.0]))) == 0.0
    torch.testing.assert_close(loss(torch.tensor([0.0, 0.5, 0.5, 0.0])), torch.tensor(1.0))
    torch.testing.assert_close(loss(torch.tensor([0.5, 0.5, 0.0, 0.0])), torch.tensor(0.25))
    assert float(grounding_loss([(probs, (2, 2))], torch.zeros(1, 3, 1), masks)) == 0.0


def test_recipe_adds_the_weighted_grounding_loss_and_it_reaches_the_cross_attention():
    data = shapes_text_data(resolution=16, length=4, object_masks=True)
    assert data.dataset.object_masks.masks.shape == (4, 2, 4, 4)
    batch = {k: [data.dataset[i][k] for i in range(4)] for k in ("image", "caption", "index")}
    batch = {"image": torch.stack(batch["image"]), "caption": batch["caption"],
             "index": torch.tensor(batch["index"])}  # fmt: skip
    encoder = _encoder()
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=16, channels=(16, 32), norm_groups=8, num_heads=2,
                      attention_resolutions=(8,), context_dim=16)  # fmt: skip
    losses = {}
    for weight in (0.0, 0.5):
        terms = [TokenGroundingLoss(data.dataset.object_masks, encoder.tokenize, weight)]
        recipe = DiffusionRecipe(unet, NoiseSchedule.cosine(100), (3, 16, 16),
                                 conditioner=TextPrompts(encoder, cond_drop_prob=0.0),
                                 terms=terms if weight else [], num_samples=0)  # fmt: skip
        torch.manual_seed(1)
        losses[weight] = recipe.loss(unet, batch, step=0)
    (plain, _), (grounded, logs) = losses[0.0], losses[0.5]
    assert 0 < logs["grounding"] <= 1
    torch.testing.assert_close(grounded, plain + 0.5 * logs["grounding"], rtol=1e-5, atol=1e-6)
    unet.zero_grad()
    (grounded - plain).backward()
    to_k = [m.to_k.weight for n, m in unet.named_modules() if n.endswith("attn2")]
    assert to_k and all(float(w.grad.abs().sum()) > 0 for w in to_k)


def test_grounding_needs_object_masks(tmp_path):
    with pytest.raises(HwaksanError, match="object masks"):
        TokenGroundingLoss(None, _encoder().tokenize, 0.1)
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, [
        "train", "--data", str(tmp_path / "data"), "--text-encoder", "mini_clip",
        "--grounding-loss", "0.1", "--steps", "1", "--out", str(tmp_path / "run"),
    ])  # fmt: skip
    assert result.exit_code != 0
    assert "the token grounding loss needs object masks: use --data shapes" in result.output
