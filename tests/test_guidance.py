"""Classifier-free guidance: the wrapper's arithmetic, every sampler and prediction type, and
that guiding never changes shapes, dtypes or the sampler's random stream."""

import pytest
import torch

import hwaksan as hk
from hwaksan.nets import UNet, UNetConfig
from hwaksan.sampling.guidance import classifier_free_guidance
from hwaksan.sampling.sample import SAMPLERS

NULL = 3  # the toy models' null class


def _unet() -> UNet:
    """A small class-conditional U-Net whose zero-initialised layers (ADM's habit) are made random,
    so that the class label reaches the output."""
    torch.manual_seed(0)
    config = UNetConfig(
        in_channels=1, resolution=8, channels=(8, 16), norm_groups=4, num_heads=2,
        attention_resolutions=(4,), num_classes=NULL,
    )  # fmt: skip
    net = UNet(config).eval()
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.1)
    return net


def _eps_model(x, t, class_labels):
    """A nonlinear, per-example toy eps-model whose output depends on the class (NULL included)."""
    w = (class_labels.float() + 1)[:, None, None, None] / (NULL + 1)  # (B, 1, 1, 1)
    return torch.tanh(x * w + t.float()[:, None, None, None] / 1000) * (1 - w / 2)


def _as(prediction_type: str, schedule: hk.NoiseSchedule):
    """_eps_model re-expressed as a model that predicts `prediction_type`."""

    def model(x, t, **cond):
        return schedule.convert(_eps_model(x, t, **cond), x, t, "epsilon", prediction_type)

    return model


def _labels(n: int) -> tuple[dict, dict]:
    labels = torch.arange(n) % NULL
    return {"class_labels": labels}, {"class_labels": torch.full_like(labels, NULL)}


@torch.no_grad()
def test_scale_zero_is_unconditional_and_one_conditional_exactly():
    net = _unet()
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    cond, uncond = _labels(4)
    pred_cond, pred_uncond = net(x, t, **cond), net(x, t, **uncond)
    assert (pred_cond - pred_uncond).abs().max() > 1e-3  # the class matters to this net
    assert torch.equal(classifier_free_guidance(net, 0.0, uncond)(x, t, **cond), pred_uncond)
    assert torch.equal(classifier_free_guidance(net, 1.0, uncond)(x, t, **cond), pred_cond)


@torch.no_grad()
def test_other_scales_mix_both_halves_from_one_batched_forward():
    net, calls = _unet(), []

    def counted(x, t, **cond):
        calls.append(x.shape[0])
        return net(x, t, **cond)

    x, t = torch.randn(4, 1, 8, 8), torch.tensor([3, 30, 300, 900])
    cond, uncond = _labels(4)
    pred_cond, pred_uncond = net(x, t, **cond), net(x, t, **uncond)
    for scale in (-1.0, 0.5, 3.0, 7.5):
        calls.clear()
        guided = classifier_free_guidance(counted, scale, uncond)(x, t, **cond)
        assert calls == [8]  # one forward over cond and uncond together
        expected = pred_uncond + scale * (pred_cond - pred_uncond)
        torch.testing.assert_close(guided, expected, rtol=0, atol=1e-5 * (1 + abs(scale)))


def test_every_key_of_cond_meets_its_unconditional_counterpart():
    """Text models: context and context_mask are both paired with the negative prompt's."""

    def model(x, t, context, context_mask):
        pooled = (context * context_mask[..., None]).sum(1)  # (B, D)
        return x + pooled[:, :1, None, None]

    x, t = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    cond = {"context": torch.ones(2, 3, 4), "context_mask": torch.tensor([[1, 1, 0]] * 2).bool()}
    uncond = {"context": torch.ones(2, 3, 4), "context_mask": torch.tensor([[1, 0, 0]] * 2).bool()}
    guided = classifier_free_guidance(model, 4.0, uncond)(x, t, **cond)
    assert torch.allclose(guided, torch.full_like(x, 1 + 4.0 * (2 - 1)))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_guidance_is_the_same_for_every_prediction_type(sampler):
    """CFG mixes predictions linearly, and eps/x0/v are affine in each other at a fixed x_t:
    guiding an eps-, x0- or v-model gives one trajectory, and it differs from the unguided one."""
    schedule = hk.NoiseSchedule.cosine(1000)
    cond, uncond = _labels(6)
    x_T = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    kw = dict(schedule=schedule, sampler=sampler, steps=10, timestep_spacing="leading", x_T=x_T,
              cond=cond)  # fmt: skip
    results = {}
    for prediction_type in ("epsilon", "sample", "v_prediction"):
        guided = classifier_free_guidance(_as(prediction_type, schedule), 3.0, uncond)
        results[prediction_type] = hk.sample(
            guided, x_T.shape, prediction_type=prediction_type,
            generator=torch.Generator().manual_seed(2), **kw,
        )  # fmt: skip
    unguided = hk.sample(_eps_model, x_T.shape, generator=torch.Generator().manual_seed(2), **kw)
    for prediction_type in ("sample", "v_prediction"):
        torch.testing.assert_close(results[prediction_type], results["epsilon"], rtol=0, atol=1e-4)
    assert (results["epsilon"] - unguided).abs().max() > 1e-2


@pytest.mark.parametrize(("sampler", "eta"), [(s, 0.0) for s in SAMPLERS] + [("ddim", 1.0)])
def test_guidance_keeps_shape_dtype_and_the_samplers_random_stream(sampler, eta):
    schedule = hk.NoiseSchedule.linear(1000)
    cond, uncond = _labels(5)
    outputs, states = [], []
    for model in (_eps_model, classifier_free_guidance(_eps_model, 2.5, uncond)):
        generator = torch.Generator().manual_seed(7)
        outputs.append(
            hk.sample(
                model,
                (5, 1, 4, 4),
                schedule=schedule,
                sampler=sampler,
                steps=8,
                eta=eta,
                generator=generator,
                cond=cond,
            )  # fmt: skip
        )
        states.append(generator.get_state())
    assert outputs[1].shape == outputs[0].shape == (5, 1, 4, 4)
    assert outputs[1].dtype == outputs[0].dtype
    assert torch.equal(states[0], states[1])  # the same draws, however the model was wrapped
    assert not torch.equal(outputs[0], outputs[1])
