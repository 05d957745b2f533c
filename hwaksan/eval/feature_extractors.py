"""Feature networks for the Frechet distance / KID, chosen by name or given as a callable.

"shapes" and "digits" are small nets that ship with hwaksan (hwaksan/weights/eval/);
"inception" is torch-fidelity's InceptionV3 (the one behind published FIDs) and needs both
`pip install torch-fidelity` and its weights file on disk: hwaksan never downloads anything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import torch

from hwaksan.errors import HwaksanError

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
FeatureSpec = str | FeatureFn
SHIPPED = {"shapes": "shapes_features", "digits": "digits_classifier"}
INCEPTION_WEIGHTS_ENV = "HWAKSAN_INCEPTION_WEIGHTS"


def _inception(weights_path: str | None = None) -> FeatureFn:
    """torch-fidelity's InceptionV3 pool features (2048-d) from a local weights file."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as e:
        raise HwaksanError(
            "the inception features need torch-fidelity: pip install torch-fidelity "
            "(or use feature 'shapes' or 'digits')"
        ) from e
    weights_path = weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV)
    if not weights_path or not Path(weights_path).is_file():
        raise HwaksanError(
            f"the inception features need the weights file pt_inception-2015-12-05 on disk: set "
            f"{INCEPTION_WEIGHTS_ENV} to its path (hwaksan never downloads; got {weights_path!r})"
        )
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], weights_path).eval()

    def features(images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        as_uint8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return net(as_uint8)[0]

    return features


@functools.lru_cache(maxsize=4)
def get_feature_fn(name: str) -> FeatureFn:
    """The feature function for "shapes", "digits" or "inception"."""
    if name in SHIPPED:
        from hwaksan.nets.features import load_feature_net

        return load_feature_net(SHIPPED[name]).features
    if name == "inception":
        return _inception()
    raise HwaksanError(f"unknown feature network {name!r}: use 'shapes', 'digits' or 'inception'")


@torch.no_grad()
def extract_features(
    images: torch.Tensor, feature: FeatureSpec = "shapes", batch_size: int = 256
) -> torch.Tensor:
    """Features [N, D] (float32) of images [N, C, H, W] in [-1, 1], computed in batches."""
    fn = get_feature_fn(feature) if isinstance(feature, str) else feature
    return torch.cat([fn(batch).float() for batch in images.split(batch_size)])
