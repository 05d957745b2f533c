"""Inpainting: RePaint for any model through the sampler callback, the kept pixels exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hwaksan as hk
from hwaksan.errors import HwaksanError
from hwaksan.images import to_pil
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Pipeline
from hwaksan.sampling.hooks import SamplerStep
from hwaksan.sampling.repaint import RePaint


def _pipe() -> Pipeline:
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=3, resolution=8, attention_resolutions=()))
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=6)  # fmt: skip


def _mask(side=8) -> torch.Tensor:
    mask = torch.zeros(1, 1, side, side)
    mask[..., side // 4 : side // 2, side // 4 :] = 1  # white: repaint
    return mask


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "euler"])
def test_pixels_outside_the_mask_come_back_exactly(sampler):
    pipe = _pipe()
    image = to_pil(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1)[0]
    mask = to_pil(_mask() * 2 - 1)[0]  # a greyscale PIL mask
    out = pipe.generate(1, image=image, mask_image=mask, sampler=sampler, jump_length=2,
                        jump_n_sample=2)[0]  # fmt: skip
    keep = np.asarray(mask) == 0
    assert (np.asarray(out)[keep] == np.asarray(image)[keep]).all()
    assert (np.asarray(out)[~keep] != np.asarray(image)[~keep]).any()  # the rest was repainted


def test_a_latent_model_keeps_the_unmasked_pixels_exactly():
    pipe = hk.load("shapes_ldm", device="cpu")
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = pipe.generate(2, image=image, mask_image=_mask(64), steps=3, output_type="pt")
    keep = (_mask(64) == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep])


def test_the_known_region_is_replaced_after_every_step_and_is_exact_at_the_end():
    """What the sampler carries on from each step: in the known region, the known sample noised
    to the step's level (its mean alpha * known); at the last step, known itself."""
    pipe, image = _pipe(), torch.rand(1, 3, 8, 8) * 2 - 1
    seen = []
    pipe.generate(1, image=image, mask_image=_mask(), callback=seen.append, output_type="pt")
    keep = (_mask() == 0).expand_as(image)
    assert torch.equal(seen[-1].x[keep], image[keep])
    for step in seen[:-1]:
        residual = (step.x - step.alpha.float() * image)[keep] / step.sigma.float()
        assert 0.5 < residual.std() < 1.6  # the noise, at the step's level


def test_resampling_runs_each_window_again():
    """jump_n_sample r over windows of jump_length j: every step is run r times (steps divisible
    by j), the model called steps * r times."""
    pipe = _pipe()
    calls = []
    unet = pipe.unet
    pipe.unet = lambda x, t, **c: calls.append(1) or unet(x, t, **c)
    pipe.unet.parameters = unet.parameters
    for j, r in [(1, 1), (2, 3), (3, 2)]:
        calls.clear()
        pipe.generate(1, image=torch.zeros(1, 3, 8, 8), mask_image=_mask(), jump_length=j,
                      jump_n_sample=r, output_type="pt")  # fmt: skip
        assert len(calls) == 6 * r


def test_noising_back_up_is_q_of_x_t_given_x_s():
    """The jump's forward draw: from x_s ~ N(alpha_s x0, sigma_s^2), x_t has mean alpha_t x0 and
    std sigma_t (RePaint eq. 9), measured on 200,000 draws."""
    schedule = hk.NoiseSchedule.cosine(1000)
    repaint = RePaint(None, torch.zeros(1), torch.zeros(1), schedule,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    a_s, s_s = (torch.tensor(v, dtype=torch.float64) for v in (0.9, (1 - 0.81) ** 0.5))
    a_t, s_t = (torch.tensor(v, dtype=torch.float64) for v in (0.5, 0.75**0.5))
    x0 = 0.7
    x_s = a_s * x0 + s_s * torch.randn(200_000, generator=torch.Generator().manual_seed(1))
    x_t = repaint._noise_up(x_s, a_s, s_s, a_t, s_t)
    assert abs(x_t.mean() - a_t * x0) < 0.01 and abs(x_t.std() - s_t) < 0.01


def test_the_users_callback_sees_the_repainted_steps():
    pipe, seen = _pipe(), []
    pipe.generate(1, image=torch.zeros(1, 3, 8, 8), mask_image=_mask(), callback=seen.append,
                  output_type="pt")  # fmt: skip
    assert len(seen) == 6 and all(isinstance(s, SamplerStep) for s in seen)


@pytest.mark.parametrize(
    "inputs, match",
    [
        (dict(mask_image=torch.zeros(1, 1, 8, 8)), "needs the image"),
        (dict(jump_length=2), "need a mask_image"),
        (
            dict(
                image=torch.zeros(1, 3, 8, 8), mask_image=torch.zeros(1, 1, 8, 8), jump_n_sample=0
            ),
            "whole number >= 1",
        ),  # fmt: skip
        (dict(image=torch.zeros(1, 3, 8, 8), mask_image=torch.zeros(1, 1, 4, 4)), "mask_image"),
    ],
)
def test_bad_inpainting_inputs_are_one_line_errors(inputs, match):
    with pytest.raises(HwaksanError, match=match):
        _pipe().generate(1, **inputs)


def test_the_shipped_inpainting_model_reads_the_mask_and_keeps_the_rest():
    pipe = hk.load("shapes_t2i_64_inpaint", device="cpu")
    assert (pipe.condition or {}).get("kind") == "inpainting"
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=64, min_objects=1, max_objects=1)
    images, _ = shapes.render_batch(2, seed=5, config=config)  # (2, 3, 64, 64) in [-1, 1]
    masks = torch.zeros(2, 1, 64, 64)
    masks[..., 8:32, 36:60] = 1  # white: paint here
    args = dict(prompt="a red square", image=images, mask_image=masks, steps=3, seed=0,
                output_type="pt")  # fmt: skip
    out = pipe.generate(2, **args)
    keep = (masks == 0).expand_as(images)
    assert torch.equal(out[keep], images[keep])
    assert (out[~keep] - images[~keep]).abs().max() > 0.5  # something was painted
    other = pipe.generate(2, **{**args, "prompt": "a blue circle"})
    assert not torch.equal(other, out)  # the prompt reaches the model
