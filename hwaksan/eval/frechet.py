"""Frechet distance (Heusel et al. 2017) and KID (Binkowski et al. 2018) between image sets.

Both compare features of a network: `feature="shapes"` or `"digits"` (small nets shipped with
hwaksan), `"inception"` (torch-fidelity's InceptionV3, optional), or any callable
`images [B, C, H, W] in [-1, 1] -> features [B, D]`. All statistics are float64.
"""

from __future__ import annotations

import torch

from hwaksan.eval.feature_extractors import FeatureSpec, extract_features


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D], in float64."""
    features = features.double()
    mu = features.mean(0)
    centered = features - mu
    return mu, centered.T @ centered / (len(features) - 1)


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (tiny negative eigenvalues -> 0)."""
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance_from_stats(
    mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor
) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)  (Dowson & Landau 1982).

    The cross term uses the symmetric form, whose eigenvalues are real and >= 0, so no complex
    parts appear (scipy's `sqrtm(S_a @ S_b)` on the non-symmetric product can produce them).
    """
    mu_a, mu_b, sigma_a, sigma_b = (t.double() for t in (mu_a, mu_b, sigma_a, sigma_b))
    root_a = _sqrt_psd(sigma_a)
    middle = root_a @ sigma_b @ root_a
    trace_cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    mean_term = (mu_a - mu_b).square().sum()
    return float(mean_term + torch.trace(sigma_a) + torch.trace(sigma_b) - 2 * trace_cross)


def frechet_distance_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits of two feature sets [N, D] and [M, D]."""
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with k(a, b) = (a.b / D + 1)^3 for two equal-size samples [m, D]."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    off_diagonal = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return off_diagonal - 2 * k_xy.mean()


def kid_from_features(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    subset_size: int = 1000,
    num_subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and std of the unbiased polynomial-kernel MMD^2 over random subsets.

    (Binkowski et al. 2018, eq. 3 with k(x, y) = (x.y / d + 1)^3); subsets drawn without
    replacement, of size min(subset_size, N, M).
    """
    features_a, features_b = features_a.double(), features_b.double()
    m = min(subset_size, len(features_a), len(features_b))
    generator = torch.Generator().manual_seed(seed)
    values = torch.stack(
        [
            _polynomial_mmd2(
                features_a[torch.randperm(len(features_a), generator=generator)[:m]],
                features_b[torch.randperm(len(features_b), generator=generator)[:m]],
            )
            for _ in range(num_subsets)
        ]
    )
    return float(values.mean()), float(values.std()) if num_subsets > 1 else 0.0


def frechet_distance(
    images_a: torch.Tensor, images_b: torch.Tensor, feature: FeatureSpec = "shapes"
) -> float:
    """Frechet distance between two image sets [N, C, H, W] in [-1, 1] on `feature`'s features."""
    return frechet_distance_from_features(
        extract_features(images_a, feature), extract_features(images_b, feature)
    )


def kernel_inception_distance(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    feature: FeatureSpec = "shapes",
    subset_size: int = 1000,
    num_subsets: int = 100,
) -> tuple[float, float]:
    """KID (mean, std) between two image sets on `feature`'s features (the name is the paper's)."""
    return kid_from_features(
        extract_features(images_a, feature),
        extract_features(images_b, feature),
        subset_size,
        num_subsets,
    )
