"""Image-to-image (SDEdit) and DDIM inversion through `generate(image=, strength=, invert=)`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hwaksan as hk
from hwaksan.errors import HwaksanError
from hwaksan.nets import UNet, unet_tiny
from hwaksan.pipeline import Pipeline
from hwaksan.sampling.mixture import GaussianMixture
from hwaksan.sampling.start import noise_to_start, start_step_for_strength


def _pipe(**kw) -> Pipeline:
    torch.manual_seed(0)
    unet = UNet(unet_tiny(in_channels=3, resolution=8, attention_resolutions=()))
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="epsilon", image_shape=(3, 8, 8), steps=10, **kw)  # fmt: skip


def _image(n=2) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1


def test_strength_0_returns_the_input_of_a_pixel_model_exactly():
    pipe, image = _pipe(), _image()
    out = pipe.generate(2, image=image, strength=0.0, output_type="pt")
    assert torch.equal(out, image)


def test_strength_0_of_a_latent_model_is_the_autoencoder_round_trip():
    pipe = hk.load("shapes_ldm", device="cpu")
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = pipe.generate(1, image=image, strength=0.0, output_type="pt")
    with torch.no_grad():
        round_trip = pipe.decode(pipe.encode(image)).clamp(-1, 1)
    assert torch.equal(out, round_trip)
    assert (out - image).abs().max() > 0  # the round trip is not the identity


def test_strength_1_equals_plain_generation_with_the_same_seed():
    pipe = _pipe()
    plain = pipe.generate(2, seed=3, output_type="pt")
    assert torch.equal(pipe.generate(2, seed=3, image=_image(), strength=1.0, output_type="pt"),
                       plain)  # fmt: skip


@pytest.mark.parametrize("sampler", ["ddim", "euler"])
def test_strength_between_is_the_tail_of_sampling_from_the_noised_image(sampler):
    """strength s: the seed's noise on the image at timesteps[k], k = steps - int(steps * s),
    then the sampler's last steps: the diffusers img2img rule, by hand."""
    pipe, image = _pipe(), _image()
    out = pipe.generate(2, seed=4, image=image, strength=0.6, sampler=sampler, output_type="pt")
    k = start_step_for_strength(10, 0.6)
    noise = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(4))
    x_k = noise_to_start(image, noise, schedule=pipe.schedule, sampler=sampler, steps=10,
                         start_step=k, timestep_spacing=pipe.timestep_spacing)  # fmt: skip
    want = hk.sample(pipe.unet, x_k.shape, schedule=pipe.schedule, sampler=sampler, steps=10,
                     timestep_spacing=pipe.timestep_spacing, x_T=x_k, start_step=k)  # fmt: skip
    assert torch.allclose(out, want.clamp(-1, 1), atol=1e-6)
    # and the image is followed more closely the lower the strength
    far = pipe.generate(2, seed=4, image=image, strength=0.9, output_type="pt")
    near = pipe.generate(2, seed=4, image=image, strength=0.2, output_type="pt")
    assert (near - image).abs().mean() < (far - image).abs().mean()


class _Exact(nn.Module):
    """The exact eps of a 2-D Gaussian (`sampling.mixture`) as a [B, 1, 1, 2] "image" model."""

    def __init__(self, schedule):
        super().__init__()
        self.model = GaussianMixture.gaussian([0.3, -0.2], [0.4, 0.5]).model(schedule, "epsilon")
        self.anchor = nn.Parameter(torch.zeros(()))  # where the pipeline reads its device

    def forward(self, x, t, **cond):
        return self.model(x.flatten(1).double(), t).reshape(x.shape).to(x.dtype)


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_invert_reconstructs_the_image_and_tightens_with_steps(strength):
    """DDIM from the image's inversion comes back to it, on the exact model: first order in the
    step size (measured mean |error| 0.156 at 10 steps, 0.020 at 100; strength 0.5: 0.154,
    0.020)."""
    schedule = hk.NoiseSchedule.linear(1000)
    pipe = Pipeline(unet=_Exact(schedule), schedule=schedule, prediction_type="epsilon",
                    image_shape=(1, 1, 2), timestep_spacing="leading")  # fmt: skip
    image = (
        GaussianMixture.gaussian([0.3, -0.2], [0.4, 0.5])
        .sample(500, torch.Generator().manual_seed(0))
        .clamp(-1, 1)
        .float()
        .reshape(500, 1, 1, 2)
    )
    errors = []
    for steps in (10, 100):
        out = pipe.generate(500, image=image, strength=strength, invert=True, steps=steps,
                            output_type="pt")  # fmt: skip
        errors.append((out - image).abs().mean().item())
    assert errors[1] < errors[0] / 5 and errors[1] < 0.03
    plain = pipe.generate(500, image=image, strength=strength, steps=100, output_type="pt")
    assert (plain - image).abs().mean() > 20 * errors[1]  # without inversion it is a new sample


@pytest.mark.parametrize(
    "inputs, match",
    [
        (dict(strength=0.5), "need an image"),
        (dict(image=torch.zeros(1, 3, 8, 8), strength=1.5), "between 0 and 1"),
        (dict(image=torch.zeros(1, 3, 8, 8), invert=True, sampler="euler"), "DDIM"),
        (dict(image=torch.zeros(1, 3, 16, 16)), "this model needs"),
        (dict(image=[torch.zeros(3, 8, 8)] * 3), "one image or 2"),
        (dict(image="x.png"), "PIL image"),
    ],
)
def test_bad_image_inputs_are_one_line_errors(inputs, match):
    with pytest.raises(HwaksanError, match=match):
        _pipe().generate(2, **inputs)


def test_pil_input_round_trips_exactly_at_strength_0():
    pipe = _pipe()
    from hwaksan.images import to_pil

    pil = to_pil(_image(1))[0]
    out = pipe.generate(1, image=pil, strength=0.0)[0]
    assert (np.asarray(out) == np.asarray(pil)).all()
