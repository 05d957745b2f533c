"""Frechet distance and KID: closed forms, and monotone growth under blur and noise."""

import sys
import types

import pytest
import torch

from hwaksan.errors import HwaksanError
from hwaksan.eval import feature_extractors
from hwaksan.eval.degradations import add_noise, gaussian_blur
from hwaksan.eval.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_from_stats,
    gaussian_stats,
    kid_from_features,
)


def _random_rotation(dim: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return q


def test_closed_form_for_gaussians_with_shared_eigenvectors():
    g = torch.Generator().manual_seed(0)
    dim = 6
    q = _random_rotation(dim, g)
    a, b = (
        torch.rand(dim, generator=g, dtype=torch.float64) * 3,
        torch.rand(dim, generator=g).double(),
    )
    mu_a, mu_b = torch.randn(dim, generator=g).double(), torch.randn(dim, generator=g).double()
    sigma_a, sigma_b = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    expected = (mu_a - mu_b).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    got = frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b)
    assert got == pytest.approx(float(expected), rel=1e-9)
    assert frechet_distance_from_stats(mu_a, sigma_a, mu_a, sigma_a) == pytest.approx(0, abs=1e-9)


def test_matches_scipy_sqrtm_for_non_commuting_covariances():
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(1)
    dim = 8
    m_a, m_b = (
        torch.randn(dim, dim, generator=g).double(),
        torch.randn(dim, dim, generator=g).double(),
    )
    sigma_a, sigma_b = m_a @ m_a.T, m_b @ m_b.T
    mu_a, mu_b = torch.randn(dim, generator=g).double(), torch.zeros(dim).double()
    cross = linalg.sqrtm(sigma_a.numpy() @ sigma_b.numpy()).real.trace()
    expected = (mu_a - mu_b).square().sum() + sigma_a.trace() + sigma_b.trace() - 2 * cross
    got = frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b)
    assert got == pytest.approx(float(expected), rel=1e-7)


def test_sample_estimate_approaches_the_closed_form():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(20_000, 3, generator=g).double() * torch.tensor([1.0, 2.0, 0.5]).double()
    b = torch.randn(20_000, 3, generator=g).double() + torch.tensor([1.0, 0.0, 0.0]).double()
    expected = 1.0 + (1 - 1) ** 2 + (2 - 1) ** 2 + (0.5 - 1) ** 2  # |dmu|^2 + sum (s_a - s_b)^2
    assert frechet_distance_from_features(a, b) == pytest.approx(expected, abs=0.05)
    mu, sigma = gaussian_stats(a)
    assert sigma.shape == (3, 3) and mu.dtype == torch.float64


def test_kid_is_near_zero_for_same_distribution_and_positive_for_shifted():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g)
    same_mean, same_std = kid_from_features(a, b, subset_size=500, num_subsets=50)
    shifted_mean, shifted_std = kid_from_features(a, b + 0.5, subset_size=500, num_subsets=50)
    assert abs(same_mean) < 3 * same_std  # unbiased: zero within its spread
    assert shifted_mean > 10 * abs(same_mean) and shifted_mean > 3 * shifted_std


def test_callable_feature_is_used_as_given():
    g = torch.Generator().manual_seed(4)
    images_a, images_b = (
        torch.rand(300, 1, 4, 4, generator=g),
        torch.rand(300, 1, 4, 4, generator=g),
    )
    flat = frechet_distance(images_a, images_b, feature=lambda x: x.flatten(1))
    assert flat == pytest.approx(
        frechet_distance_from_features(images_a.flatten(1), images_b.flatten(1)), rel=1e-6
    )


def test_inception_without_torch_fidelity_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(HwaksanError, match="pip install torch-fidelity"):
        feature_extractors._inception()


def test_inception_without_local_weights_is_a_clear_error(monkeypatch):
    fake = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    fake.FeatureExtractorInceptionV3 = None  # never reached: the weights check comes first
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", fake)
    monkeypatch.delenv(feature_extractors.INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(HwaksanError, match=feature_extractors.INCEPTION_WEIGHTS_ENV):
        feature_extractors._inception()


def test_unknown_feature_name_is_a_clear_error():
    with pytest.raises(HwaksanError, match="unknown feature"):
        frechet_distance(torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 8), feature="vgg")


def _assert_degradations_grow(real_a, real_b, feature, blur_sigmas, noise_stds):
    """FD(real, real) is small, and FD grows with every step of blur and of noise."""
    f_a = feature_extractors.extract_features(real_a, feature)
    base = frechet_distance_from_features(f_a, feature_extractors.extract_features(real_b, feature))
    for degrade, levels in (
        (lambda s: gaussian_blur(real_b, s), blur_sigmas),
        (lambda s: add_noise(real_b, s), noise_stds),
    ):
        distances = [
            frechet_distance_from_features(
                f_a, feature_extractors.extract_features(degrade(level), feature)
            )
            for level in levels
        ]
        assert all(x < y for x, y in zip([base, *distances], distances)), (base, distances)
        assert distances[-1] > 10 * base, (base, distances)
    return base


def test_digits_frechet_grows_with_blur_and_noise():
    pytest.importorskip("sklearn")
    from hwaksan.data import digits

    images, _ = digits.load_digits_tensors("all", resolution=16)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    half = len(images) // 2
    _assert_degradations_grow(
        images[order[:half]],
        images[order[half:]],
        "digits",
        blur_sigmas=(0.5, 1.0, 1.5, 2.0),
        noise_stds=(0.2, 0.4, 0.6, 0.8),
    )


def test_shapes_frechet_grows_with_blur_and_noise():
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=32)
    real_a, _ = shapes.render_batch(400, seed=0, config=config)
    real_b, _ = shapes.render_batch(400, seed=1, config=config)
    _assert_degradations_grow(
        real_a, real_b, "shapes",
        blur_sigmas=(0.5, 1.0, 1.5, 2.0), noise_stds=(0.1, 0.2, 0.4, 0.8),
    )  # fmt: skip
