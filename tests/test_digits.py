"""sklearn's digits: tensors, the fixed split, labels, and the shipped classifier's accuracy."""

import sys

import numpy as np
import pytest
import torch

from hwaksan.data import digits
from hwaksan.errors import HwaksanError

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_images_are_sklearn_digits_in_minus_one_one():
    images, labels = digits.load_digits_tensors("all")
    bunch = sklearn_datasets.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() == 1
    np.testing.assert_allclose((images[:, 0].numpy() + 1) * 8, bunch.images, atol=1e-5)
    assert labels.tolist() == bunch.target.tolist()


def test_split_is_fixed_disjoint_and_stratified():
    _, labels = digits.load_digits_tensors("all")
    train = digits.split_indices(labels, "train")
    heldout = digits.split_indices(labels, "heldout")
    assert len(train) == 1497 and len(heldout) == 300
    assert not set(train.tolist()) & set(heldout.tolist())
    assert torch.bincount(labels[heldout]).tolist() == [30] * 10
    assert torch.equal(heldout, digits.split_indices(labels, "heldout"))  # same every call


def test_resize_and_pad_to_16():
    resized, _ = digits.load_digits_tensors("heldout", resolution=16)
    padded, _ = digits.load_digits_tensors("heldout", resolution=16, upscale="pad")
    native, _ = digits.load_digits_tensors("heldout")
    assert resized.shape == padded.shape == (300, 1, 16, 16)
    assert resized.min() >= -1 and resized.max() <= 1
    assert torch.equal(padded[:, :, 4:12, 4:12], native)
    assert (padded[:, :, :4] == -1).all() and (padded[:, :, 12:] == -1).all()
    # bilinear 2x upsampling: each 2x2 block's mean follows its source pixel (measured r = 0.98)
    pooled = torch.nn.functional.avg_pool2d(resized, 2).flatten()
    assert torch.corrcoef(torch.stack([pooled, native.flatten()]))[0, 1] > 0.95


def test_dataset_items():
    ds = digits.DigitsDataset("train", resolution=16)
    item = ds[0]
    assert len(ds) == 1497 and item["image"].shape == (1, 16, 16)
    assert item["caption"] == f"digit {digits.DIGIT_WORDS[item['class_id']]}"


def test_missing_sklearn_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(HwaksanError, match="pip install scikit-learn"):
        digits.load_digits_tensors("train")


def test_bad_split_is_a_clear_error():
    with pytest.raises(HwaksanError, match="split"):
        digits.load_digits_tensors("test")


def test_shipped_classifier_is_at_least_97_percent_on_heldout():
    from hwaksan.eval.digits_score import digits_accuracy, digits_histogram

    for resolution in (8, 16):  # 8x8 inputs are resized to 16x16 by the classifier
        images, labels = digits.load_digits_tensors("heldout", resolution=resolution)
        assert digits_accuracy(images, labels) >= 0.97
    assert digits_histogram(images) == pytest.approx([30] * 10, abs=3)
    rgb = images.expand(-1, 3, -1, -1)  # an RGB folder of gray digits reads the same
    assert digits_accuracy(rgb, labels) >= 0.97
