"""Layout guidance: cross-attention maps recorded by hooks, their centroids, the relation energy,
its gradient through the U-Net, the eps shift, phrase positions, and the pipeline's arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwaksan.data.shapes import shapes_vocabulary
from hwaksan.diffusion import parameterization as param
from hwaksan.diffusion.schedule import NoiseSchedule
from hwaksan.errors import HwaksanError
from hwaksan.guidance.layout import (
    CrossAttentionMaps,
    Relation,
    centroid,
    layout_guidance,
    parse_relations,
    phrase_positions,
    relation_energy,
)
from hwaksan.nets import build_unet
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.pipeline import Pipeline

PROMPT = "a red circle to the left of a blue square"


@pytest.fixture
def encoder() -> MiniCLIPTextModel:
    torch.manual_seed(0)
    return MiniCLIPTextModel(
        MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=16, layers=1, heads=2)
    ).eval()


@pytest.fixture
def unet() -> nn.Module:
    torch.manual_seed(0)
    net = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, num_heads=2,
                     attention_resolutions=(8, 4), context_dim=16)  # fmt: skip
    for name, p in net.named_parameters():
        if "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)
    return net.eval()


def _context(encoder, prompts):
    enc = encoder(prompts)
    return dict(context=enc.hidden_states, context_mask=enc.attention_mask)


def test_maps_are_the_softmax_of_each_cross_attention_and_leave_the_output_alone(unet, encoder):
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([500, 500])
    cond = _context(encoder, [PROMPT, "a star"])
    plain = unet(x, t, **cond)
    with CrossAttentionMaps(unet) as rec:
        hooked = unet(x, t, **cond)
    assert torch.equal(plain, hooked)
    sizes = sorted({hw for _, hw in rec.maps})
    assert sizes == [(4, 4), (8, 8)]  # both attention resolutions, down and up paths
    for probs, (H, W) in rec.maps:
        assert probs.shape == (2, H * W, encoder.max_length)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, H * W))
        assert float(probs[1, :, 4:].detach().abs().max()) == 0  # "<bos> a star <eos>" + padding
    recorded = len(rec.maps)
    with torch.no_grad():
        unet(x, t, **cond)
    assert len(rec.maps) == recorded  # hooks removed on exit: nothing new is recorded


def test_centroid_of_a_point_and_of_a_half():
    probs = torch.zeros(1, 4 * 4, 3)
    probs[0, 1 * 4 + 3, 0] = 1.0  # row 1, column 3
    probs[0, :, 1] = torch.tensor([1.0, 1, 0, 0] * 4)  # left half
    c = centroid(probs, (4, 4), [0])
    torch.testing.assert_close(c, torch.tensor([[3.5 / 4, 1.5 / 4]]))
    torch.testing.assert_close(centroid(probs, (4, 4), [1]), torch.tensor([[0.25, 0.5]]))
    both = centroid(probs, (4, 4), [0, 1])  # a phrase: its tokens' maps summed, then normalised
    torch.testing.assert_close(both[0, 0], torch.tensor((3.5 / 4 + 8 * 0.25) / 9))


def test_relation_energy_is_zero_when_the_relation_holds_by_the_margin():
    probs = torch.zeros(2, 16, 3)
    probs[:, 4 * 1 + 0, 0] = 1.0  # token 0 at x = 1/8
    probs[:, 4 * 1 + 3, 1] = 1.0  # token 1 at x = 7/8
    maps = [(probs, (4, 4))]
    holds = [Relation((0,), "left of", (1,))]
    flipped = [Relation((0,), "right of", (1,))]
    e = relation_energy(maps, [holds, flipped], margin=0.25)
    assert float(e[0]) == 0.0
    torch.testing.assert_close(e[1], torch.tensor((0.25 + 0.75) ** 2))
    above = relation_energy(maps, [[Relation((0,), "above", (1,))]] * 2, margin=0.25)
    torch.testing.assert_close(above, torch.full((2,), 0.25**2))  # same row: short by the margin


def test_a_step_against_the_energy_gradient_lowers_the_energy(unet, encoder):
    """The gradient flows from the recorded maps through the U-Net to x_t."""
    cond = _context(encoder, [PROMPT] * 2)
    rels = parse_relations(encoder.tokenize, PROMPT, [("red circle", "right of", "blue square")])
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([900, 900])
    rec = CrossAttentionMaps(unet)

    def energy(x):
        with rec:
            unet(x, t, **cond)
        return relation_energy(rec.maps, [rels, rels], margin=0.5).sum()

    x_in = x.clone().requires_grad_(True)
    e0 = energy(x_in)
    (grad,) = torch.autograd.grad(e0, x_in)
    assert float(grad.abs().max()) > 0
    with torch.no_grad():
        e1 = energy(x - 0.01 * grad / grad.norm() * x.norm())
    assert float(e1) < float(e0.detach())


def test_guided_x0_moves_down_the_normalised_gradient_and_only_early(unet, encoder):
    schedule = NoiseSchedule.cosine(1000)
    cond = _context(encoder, [PROMPT])
    rels = [parse_relations(encoder.tokenize, PROMPT, [("red circle", "left of", "blue square")])]
    guided = layout_guidance(unet, unet, rels, 0.5, schedule=schedule,
                             prediction_type="v_prediction", until=0.5, margin=0.5)  # fmt: skip
    x = torch.randn(1, 3, 8, 8)
    late = torch.tensor([300])
    torch.testing.assert_close(guided(x, late, **cond), unet(x, late, **cond))
    t = torch.tensor([800])
    x_in = x.clone().requires_grad_(True)
    with CrossAttentionMaps(unet) as rec:
        unet(x_in, t, **cond)
    energy = relation_energy(rec.maps, rels, 0.5)
    (grad,) = torch.autograd.grad(energy.sum(), x_in)
    alpha, sigma = schedule.alpha_sigma_at(t, x)
    with torch.no_grad():
        x0 = param.to_x0(unet(x, t, **cond), x, alpha, sigma, "v_prediction")
        got = param.to_x0(guided(x, t, **cond), x, alpha, sigma, "v_prediction")
    violation = min(1.0, float(energy.detach().sqrt()) / 0.5)
    step = 0.5 * violation * grad / grad.pow(2).mean().sqrt()  # scale * RMS-normalised gradient
    torch.testing.assert_close(got, x0 - step, rtol=1e-4, atol=1e-5)
    assert layout_guidance(unet, unet, rels, 0.0, schedule=schedule) is unet


def test_phrase_positions(encoder):
    # "<bos> a red circle to the left of a blue square <eos>"
    assert phrase_positions(encoder.tokenize, PROMPT, ["red circle", "blue square"]) == [
        (2, 3), (9, 10)]  # fmt: skip
    twice = "a red circle above a red circle"
    assert phrase_positions(encoder.tokenize, twice, ["red circle", "red circle"]) == [
        (2, 3), (6, 7)]  # fmt: skip
    with pytest.raises(HwaksanError, match="green star"):
        phrase_positions(encoder.tokenize, PROMPT, ["green star"])
    with pytest.raises(HwaksanError, match="unknown relation 'next to'"):
        parse_relations(encoder.tokenize, PROMPT, [("red circle", "next to", "blue square")])


def test_pipeline_takes_relations_per_image_or_for_all(unet, encoder):
    pipe = Pipeline(unet=unet, schedule=NoiseSchedule.cosine(100), prediction_type="v_prediction",
                    image_shape=(3, 8, 8), steps=4, text_encoder=encoder)  # fmt: skip
    rel = [("red circle", "left of", "blue square")]
    plain = pipe.generate(2, prompt=PROMPT, output_type="pt")
    same = pipe.generate(2, prompt=PROMPT, output_type="pt", relations=rel, layout_scale=0.0)
    assert torch.equal(plain, same)
    steered = pipe.generate(2, prompt=PROMPT, output_type="pt", relations=rel, layout_scale=50.0)
    assert not torch.allclose(plain, steered, atol=1e-4)
    per_image = pipe.generate(2, prompt=PROMPT, output_type="pt", relations=[rel, rel],
                              layout_scale=50.0)  # fmt: skip
    torch.testing.assert_close(per_image, steered)
    pipe.layout_scale = 50.0  # the model's own scale, used when a call names none
    torch.testing.assert_close(pipe.generate(2, prompt=PROMPT, output_type="pt", relations=rel),
                               steered)  # fmt: skip
    with pytest.raises(HwaksanError, match="one per image"):
        pipe.generate(3, prompt=PROMPT, relations=[rel, rel], layout_scale=1.0)
    with pytest.raises(HwaksanError, match="not in the prompt"):
        pipe.generate(1, prompt="a star", relations=rel, layout_scale=1.0)


def test_relations_on_a_model_without_text_is_a_one_line_error():
    torch.manual_seed(0)
    unet = build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8)
    pipe = Pipeline(unet=unet.eval(), schedule=NoiseSchedule.cosine(100), image_shape=(3, 8, 8),
                    prediction_type="epsilon")  # fmt: skip
    with pytest.raises(HwaksanError, match="not one"):
        pipe.generate(1, relations=[("a", "left of", "b")], layout_scale=1.0)


def test_layout_guidance_on_the_shipped_64px_model_with_the_kernels_on():
    """The README's headline: layout guidance through the shipped model's U-Net, whose middle
    runs 16 tokens of 32-wide heads (d > N) through the attention kernel's backward; that
    shape once corrupted the heap and ended the process with a segmentation fault."""
    import hwaksan as hk
    from hwaksan.nets import kernels

    pipe = hk.load("shapes_t2i_64")
    rel = [("red circle", "left of", "blue square")]
    kwargs = dict(prompt=PROMPT, steps=2, seed=0, output_type="pt", layout_scale=5.0)
    guided = pipe.generate(1, relations=rel, **kwargs)
    plain = pipe.generate(1, **kwargs)
    assert guided.shape == (1, 3, 64, 64) and torch.isfinite(guided).all()
    assert not torch.allclose(guided, plain, atol=1e-3)  # the guide ran and moved the image
    if kernels.enabled():
        assert kernels.attention() is not None and kernels.group_norm() is not None
