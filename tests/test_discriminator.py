"""The PatchGAN, the hinge losses' values and signs, and the adaptive weight by hand."""

from __future__ import annotations

import torch

from hwaksan.nets.discriminator import (
    DiscriminatorConfig,
    PatchDiscriminator,
    adaptive_weight,
    hinge_d_loss,
    hinge_g_loss,
)


def test_patch_discriminator_outputs_a_grid_of_logits():
    d = PatchDiscriminator(DiscriminatorConfig(channels=8, num_layers=2))
    assert d(torch.randn(2, 3, 64, 64)).shape == (2, 1, 14, 14)
    d3 = PatchDiscriminator.from_config({"in_channels": 1, "channels": 8, "num_layers": 3})
    assert d3(torch.randn(2, 1, 64, 64)).shape == (2, 1, 6, 6)
    logits = d(torch.randn(4, 3, 64, 64))
    assert logits.std() > 0  # not a constant


def test_hinge_losses_values_and_signs():
    confident = hinge_d_loss(torch.full((4,), 1.5), torch.full((4,), -2.0))
    assert confident == 0  # beyond the margins nothing is left to learn
    wrong = hinge_d_loss(torch.full((4,), -1.0), torch.full((4,), 1.0))
    assert wrong == 2.0  # 0.5 * ((1 + 1) + (1 + 1))
    real = torch.zeros(4, requires_grad=True)
    fake = torch.zeros(4, requires_grad=True)
    hinge_d_loss(real, fake).backward()
    assert torch.all(real.grad < 0) and torch.all(fake.grad > 0)  # D pushes real up, fake down
    fake_g = torch.tensor([0.5, -3.0], requires_grad=True)
    g = hinge_g_loss(fake_g)
    g.backward()
    assert g == 1.25 and torch.all(fake_g.grad < 0)  # G pushes D(fake) up, without a margin


def test_adaptive_weight_matches_a_hand_computation():
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)  # the "last layer"
    a = torch.tensor([3.0, 0.0, 4.0])
    b = torch.tensor([1.0, 2.0, 0.5])
    rec = (w * a).sum()  # d rec / dw = a, norm 5
    g = 0.5 * (w * b).square().sum()  # d g / dw = w b^2 = [1, -8, 0.75]
    expected = 5.0 / (torch.tensor([1.0, -8.0, 0.75]).norm() + 1e-4)
    got = adaptive_weight(rec, g, w)
    torch.testing.assert_close(got, expected)
    assert not got.requires_grad
    rec.backward()  # the graphs are kept for the real backward
    assert torch.equal(w.grad, a)
    assert adaptive_weight((w * a).sum(), (w * 0).sum(), w) == 1e4  # clamped, not infinite
