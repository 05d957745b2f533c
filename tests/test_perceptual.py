"""Perceptual distance: LPIPS's formula, its real-weights loading path (on weights this test makes),
and the project-trained shapes net it uses by default."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from hwaksan.errors import HwaksanError
from hwaksan.nets.perceptual import (
    LPIPS_SCALE,
    LPIPS_SHIFT,
    VGG16_LAYERS,
    VGG16Taps,
    lpips_vgg,
    shapes_perceptual,
)


def _fake_lpips_files(tmp_path, seed: int = 0):
    """Random weights in the real files' layouts: torchvision VGG16 and LPIPS's linear layers."""
    g = torch.Generator().manual_seed(seed)
    vgg, c_in, i = {}, 3, 0
    for v in VGG16_LAYERS:
        if v == "M":
            i += 1
            continue
        vgg[f"features.{i}.weight"] = (
            torch.randn(v, c_in, 3, 3, generator=g) * (2 / (9 * c_in)) ** 0.5
        )
        vgg[f"features.{i}.bias"] = torch.randn(v, generator=g) * 0.01
        c_in, i = v, i + 2
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # a full VGG16 file has these too
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
            for k, c in enumerate((64, 128, 256, 512, 512))}  # fmt: skip
    return vgg, lins


def _lpips_by_hand(vgg: dict, lins: dict, x, y) -> torch.Tensor:
    """LPIPS (Zhang et al. 2018, eq. 1) written out with F.conv2d from the raw state dicts."""
    shift = torch.tensor(LPIPS_SHIFT)[None, :, None, None]
    scale = torch.tensor(LPIPS_SCALE)[None, :, None, None]
    total = torch.zeros(len(x))
    hx, hy = (x - shift) / scale, (y - shift) / scale
    i, k = 0, 0
    for v in VGG16_LAYERS:
        if v == "M":
            hx, hy = F.max_pool2d(hx, 2), F.max_pool2d(hy, 2)
            i += 1
            continue
        w, b = vgg[f"features.{i}.weight"], vgg[f"features.{i}.bias"]
        hx, hy = F.relu(F.conv2d(hx, w, b, padding=1)), F.relu(F.conv2d(hy, w, b, padding=1))
        if i + 1 in (3, 8, 15, 22, 29):
            nx = hx / (hx.square().sum(1, keepdim=True).sqrt() + 1e-10)
            ny = hy / (hy.square().sum(1, keepdim=True).sqrt() + 1e-10)
            lin = lins[f"lin{k}.model.1.weight"]
            total += F.conv2d((nx - ny).square(), lin).mean((1, 2, 3))
            k += 1
        i += 2
    return total


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_lpips_vgg_loads_real_layouts_and_computes_lpips(tmp_path, suffix):
    vgg, lins = _fake_lpips_files(tmp_path)
    vgg_file, lin_file = tmp_path / f"vgg16{suffix}", tmp_path / f"vgg{suffix}"
    if suffix == ".pth":  # what users have: torch.save'd state dicts (read weights-only)
        torch.save(vgg, vgg_file)
        torch.save(lins, lin_file)
    else:
        save_file(vgg, str(vgg_file))
        save_file(lins, str(lin_file))
    lpips = lpips_vgg(vgg_file, lin_file)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    d = lpips(x, y)
    torch.testing.assert_close(d, _lpips_by_hand(vgg, lins, x, y), rtol=1e-4, atol=1e-6)
    assert torch.all(d > 0) and torch.all(lpips(x, x) == 0)
    torch.testing.assert_close(lpips(y, x), d)


def test_lpips_vgg_bad_files_are_clear_errors(tmp_path):
    vgg, lins = _fake_lpips_files(tmp_path)
    save_file(vgg, str(tmp_path / "vgg.safetensors"))
    save_file(lins, str(tmp_path / "lin.safetensors"))
    with pytest.raises(HwaksanError, match="does not exist"):
        lpips_vgg(tmp_path / "nope.pth", tmp_path / "lin.safetensors")
    with pytest.raises(HwaksanError, match="not a VGG16 state dict"):
        lpips_vgg(tmp_path / "lin.safetensors", tmp_path / "lin.safetensors")
    with pytest.raises(HwaksanError, match="no LPIPS linear layer"):
        lpips_vgg(tmp_path / "vgg.safetensors", tmp_path / "vgg.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(HwaksanError, match="not a readable weights file"):
        lpips_vgg(tmp_path / "junk.pth", tmp_path / "lin.safetensors")


def test_vgg_taps_are_lpips_layers():
    shapes = [tuple(f.shape[1:]) for f in VGG16Taps()(torch.zeros(1, 3, 32, 32))]
    assert shapes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_shapes_perceptual_distance_grows_with_damage_and_trains_only_the_input():
    from hwaksan.data import shapes

    config = shapes.ShapesConfig(resolution=64)
    x, _ = shapes.render_batch(16, seed=123, config=config)
    lpips = shapes_perceptual()
    assert torch.all(lpips(x, x).abs() < 1e-6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    distances = [float(lpips(x, (x + s * noise).clamp(-1, 1)).mean()) for s in (0.05, 0.2, 0.5)]
    assert distances[0] < distances[1] < distances[2]
    blurred = [F.avg_pool2d(x, k, 1, k // 2)[..., :64, :64] for k in (3, 5)]
    assert float(lpips(x, blurred[0]).mean()) < float(lpips(x, blurred[1]).mean())
    y = (x + 0.1 * noise).requires_grad_()
    lpips(x, y).sum().backward()
    assert y.grad.abs().sum() > 0
    assert all(p.grad is None for p in lpips.parameters())  # the feature net stays frozen
    lpips.train()
    assert not lpips.backbone.training  # BatchNorm keeps its running statistics
