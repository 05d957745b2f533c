"""Classifier guidance: exact on a Gaussian mixture (unconditional model + true class posterior =
the class's own model), the eps and mean-shift forms, first-order ascent of log p(y | x_t), and
that guiding never changes shapes, dtypes or the sampler's random stream."""

import pytest
import torch

import hwaksan as hk
from hwaksan.diffusion.reverse import p_mean_variance
from hwaksan.nets.classifier import NoisyClassifier, NoisyClassifierConfig
from hwaksan.sampling import timesteps as ts
from hwaksan.sampling.classifier_guidance import (
    class_log_prob_grad,
    classifier_guidance,
)
from hwaksan.sampling.ddim import ddim_step
from hwaksan.sampling.mixture import GaussianMixture
from hwaksan.sampling.sample import SAMPLERS

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
MIXTURE = GaussianMixture(
    weights=[0.5, 0.3, 0.2],
    means=[[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]],
    stds=[[0.5, 0.3], [0.4, 0.6], [0.3, 0.3]],
)


def _true_classifier(schedule):
    """The exact p(k | x_t) of the mixture's components: a perfect noise-aware classifier."""

    def classifier(x_t, t):
        alpha, sigma = schedule.alpha_sigma_at(t, x_t)
        return MIXTURE.log_responsibilities(x_t, alpha[:, 0], sigma[:, 0]).to(x_t.dtype)

    return classifier


def _component(k: int) -> GaussianMixture:
    return GaussianMixture(torch.ones(1), MIXTURE.means[k : k + 1], MIXTURE.stds[k : k + 1])


def _random_classifier() -> NoisyClassifier:
    """A small NoisyClassifier whose zero-initialised layers are made random."""
    torch.manual_seed(0)
    config = NoisyClassifierConfig(
        in_channels=1, resolution=8, num_classes=4, channels=(8, 16), norm_groups=4, num_heads=2,
        attention_resolutions=(4,),
    )  # fmt: skip
    net = NoisyClassifier(config)
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.1)
    return net.eval().requires_grad_(False)


_W = torch.randn(64, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) / 8
_V = torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))


def _toy_classifier(x, t):
    """A smooth nonlinear float64 classifier of [B, 1, 8, 8] inputs: 4 logits depending on t."""
    h = torch.tanh(x.flatten(1) @ _W.to(x.dtype))  # (B, 16)
    return (h @ _V.to(x.dtype)) * (1 + t.to(x.dtype)[:, None] / 1000)  # (B, 4)


def _toy_model(x, t, **cond):
    """A nonlinear per-example toy prediction (any type: the wrapper converts exactly)."""
    return torch.tanh(x + t.to(x.dtype)[:, None, None, None] / 1000)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_scale_one_with_the_true_classifier_is_the_class_conditional_model(prediction_type):
    """grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t): the guided unconditional
    model equals the exact model of component y, at integer and fractional t."""
    schedule = hk.NoiseSchedule.cosine(1000)
    x_t = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    guided = classifier_guidance(
        MIXTURE.model(schedule, prediction_type), _true_classifier(schedule), 1.0, labels,
        schedule=schedule, prediction_type=prediction_type,
    )  # fmt: skip
    for t in (torch.full((6,), 20), torch.full((6,), 500), torch.full((6,), 871.37)):
        expected = torch.stack([_component(int(k)).model(schedule, prediction_type)(
            x_t[i : i + 1], t[i : i + 1])[0] for i, k in enumerate(labels)])  # fmt: skip
        torch.testing.assert_close(guided(x_t, t), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpmpp_2m", "euler"])
def test_guided_unconditional_samples_land_on_the_requested_class(sampler):
    """Sampling the unconditional mixture with the true classifier at scale 1 (mean-shift form for
    DDPM) draws from component y: mean and std within a few hundredths of the truth."""
    schedule = hk.NoiseSchedule.cosine(1000)
    n, k, steps = 2000, 2, 100
    labels = torch.full((n,), k)
    options = {}
    if sampler == "ddpm":
        options["ddpm_timesteps"] = ts.discrete_timesteps(schedule, steps, "trailing")
    guided = classifier_guidance(
        MIXTURE.model(schedule, "v_prediction"), _true_classifier(schedule), 1.0, labels,
        schedule=schedule, prediction_type="v_prediction", **options,
    )  # fmt: skip
    x0 = hk.sample(guided, (n, 2), schedule=schedule, sampler=sampler, steps=steps,
                   prediction_type="v_prediction", timestep_spacing="trailing",
                   generator=torch.Generator().manual_seed(1))  # fmt: skip
    target = _component(k)
    assert (x0.mean(0).double() - target.mean).abs().max() < 0.05
    assert (x0.std(0).double() - target.std).abs().max() < 0.05


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_eps_form_shifts_eps_by_sigma_times_the_scaled_gradient(prediction_type):
    schedule = hk.NoiseSchedule.linear(1000)
    classifier, labels = _toy_classifier, torch.tensor([0, 1, 2, 3])
    x, t = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.tensor([5, 200, 600, 990])
    guided = classifier_guidance(_toy_model, classifier, 2.5, labels, schedule=schedule,
                                 prediction_type=prediction_type)  # fmt: skip
    grad = class_log_prob_grad(classifier, x, t, labels)
    eps = schedule.predict_eps(_toy_model(x, t), x, t, prediction_type)
    eps_guided = schedule.predict_eps(guided(x, t), x, t, prediction_type)
    sigma = schedule.alpha_sigma(t, x)[1]
    torch.testing.assert_close(eps_guided, eps - sigma * 2.5 * grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_mean_shift_form_moves_the_ddpm_mean_by_scale_variance_gradient(
    prediction_type, variance_type
):
    schedule = hk.NoiseSchedule.cosine(1000)
    timesteps = ts.discrete_timesteps(schedule, 20, "trailing")
    classifier, labels = _toy_classifier, torch.tensor([3, 2, 1, 0])
    guided = classifier_guidance(
        _toy_model, classifier, 4.0, labels, schedule=schedule, prediction_type=prediction_type,
        ddpm_timesteps=timesteps, variance_type=variance_type,
    )  # fmt: skip
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    for i in (0, 7, len(timesteps) - 1):  # the first, a middle and the last step
        t = timesteps[i].expand(4)
        prev = (timesteps[i + 1] if i + 1 < len(timesteps) else torch.tensor(-1)).expand(4)
        step = dict(prediction_type=prediction_type, variance_type=variance_type, prev_t=prev)
        plain = p_mean_variance(_toy_model(x, t), x, t, schedule, **step)
        shifted = p_mean_variance(guided(x, t), x, t, schedule, **step)
        grad = class_log_prob_grad(classifier, x, t, labels)
        expected = plain.mean + 4.0 * plain.variance * grad
        torch.testing.assert_close(shifted.mean, expected, rtol=1e-7, atol=1e-9)


def test_the_guided_step_raises_log_p_y_to_first_order():
    """A guided DDIM step moves x by d with log p(y | x + d) - log p(y | x) = grad . d + O(d^2) > 0:
    the finite difference matches the gradient to 1% at a small scale, and is positive."""
    schedule = hk.NoiseSchedule.linear(1000)
    classifier, labels = _toy_classifier, torch.tensor([0, 1, 2, 3])
    x, t = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.full((4,), 400)
    a_prev = schedule.alphas_cumprod[380]

    def ddim_next(model):
        pred = model(x, t)
        return ddim_step(schedule.predict_x0(pred, x, t, "epsilon"),
                         schedule.predict_eps(pred, x, t, "epsilon"), a_prev)  # fmt: skip

    def log_p(z):
        return classifier(z, t).log_softmax(-1).gather(1, labels[:, None])[:, 0]

    grad = class_log_prob_grad(classifier, x, t, labels)
    for scale in (1e-3, 1e-2):
        guided = classifier_guidance(_toy_model, classifier, scale, labels, schedule=schedule)
        d = ddim_next(guided) - ddim_next(_toy_model)  # (4, 1, 8, 8)
        gain = log_p(x + d) - log_p(x)  # the finite difference, per example
        first_order = (grad * d).flatten(1).sum(1)
        assert (first_order > 0).all() and (gain > 0).all()
        torch.testing.assert_close(gain, first_order, rtol=1e-2, atol=0)


def test_scale_zero_returns_the_model_itself():
    schedule = hk.NoiseSchedule.linear(1000)
    guided = classifier_guidance(_toy_model, _toy_classifier, 0.0, torch.zeros(2),
                                 schedule=schedule)  # fmt: skip
    assert guided is _toy_model


@pytest.mark.parametrize(("sampler", "eta"), [(s, 0.0) for s in SAMPLERS] + [("ddim", 1.0)])
def test_guidance_keeps_shape_dtype_and_the_samplers_random_stream(sampler, eta):
    schedule = hk.NoiseSchedule.linear(1000)
    classifier, labels = _random_classifier(), torch.tensor([0, 1, 2])
    guided = classifier_guidance(_toy_model, classifier, 3.0, labels, schedule=schedule)
    outputs, states = [], []
    for model in (_toy_model, guided):
        generator = torch.Generator().manual_seed(3)
        outputs.append(hk.sample(model, (3, 1, 8, 8), schedule=schedule, sampler=sampler,
                                 steps=6, eta=eta, generator=generator))  # fmt: skip
        states.append(generator.get_state())
    assert outputs[1].shape == outputs[0].shape and outputs[1].dtype == outputs[0].dtype
    assert torch.equal(states[0], states[1])
    assert (outputs[0] - outputs[1]).abs().max() > 1e-4
