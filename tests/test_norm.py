"""GroupNorm and GroupNorm.silu: forward and backward equal the native ops, through the compiled
fused kernel and through the PyTorch fallback alike."""

import os

import pytest
import torch
import torch.nn.functional as F

from hwaksan.nets import kernels
from hwaksan.nets.norm import GroupNorm


@pytest.fixture(params=["fused", "fallback"])
def path(request, monkeypatch):
    """Run a test through the compiled kernel, then again with it switched off."""
    if request.param == "fallback":
        monkeypatch.setattr(kernels, "group_norm", lambda: None)
    return request.param


def test_fused_kernel_builds_here():
    """The machine the tests run on has a compiler: the fast path must not silently go missing."""
    if os.environ.get("HWAKSAN_FUSED_KERNELS") == "0":
        pytest.skip("fused kernels switched off")
    ops = kernels.group_norm()
    assert ops is not None and hasattr(ops, "forward") and hasattr(ops, "backward")


def _case(groups, channels, dtype, channels_last, seed=0):
    g = torch.Generator().manual_seed(seed)
    norm = GroupNorm(groups, channels).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(channels, generator=g))
        norm.bias.copy_(torch.randn(channels, generator=g))
    x = (torch.randn(3, channels, 5, 7, generator=g) * 2 + 1).to(dtype)
    dz = torch.randn(3, channels, 5, 7, generator=g).to(dtype)
    if channels_last:
        x, dz = (t.contiguous(memory_format=torch.channels_last) for t in (x, dz))
    return norm, x, dz


def _grads(fn, norm, x, dz):
    x = x.detach().requires_grad_()
    z = fn(x)
    grads = torch.autograd.grad(z, (x, norm.weight, norm.bias), dz)
    return z, grads


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("groups, channels", [(4, 16), (3, 21), (1, 5), (7, 7)])
def test_group_norm_silu_equals_native_group_norm_then_silu(groups, channels, channels_last, path):
    norm, x, dz = _case(groups, channels, torch.float32, channels_last)

    def reference(x):
        return F.silu(F.group_norm(x, groups, norm.weight, norm.bias, norm.eps))

    z, grads = _grads(norm.silu, norm, x, dz)
    z_ref, grads_ref = _grads(reference, norm, x.contiguous(), dz.contiguous())
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert z.is_contiguous(memory_format=layout)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    for name, got, want in zip(("x", "weight", "bias"), grads, grads_ref):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, msg=f"d{name}")
    assert grads[0].is_contiguous(memory_format=layout)


@pytest.mark.parametrize("channels_last", [False, True])
def test_group_norm_silu_bf16_close_to_float32(channels_last):
    norm, x, dz = _case(4, 16, torch.bfloat16, channels_last)
    z, grads = _grads(norm.silu, norm, x, dz)
    ref = GroupNorm(4, 16)
    ref.load_state_dict({k: v.float() for k, v in norm.state_dict().items()})
    z_ref, grads_ref = _grads(ref.silu, ref, x.float(), dz.float())
    assert z.dtype == torch.bfloat16
    for got, want in zip((z, *grads), (z_ref, *grads_ref)):
        assert (got.float() - want).norm() / want.norm() < 0.02


def test_group_norm_silu_under_autocast_and_non_4d_falls_back_to_two_ops():
    norm, x, _ = _case(4, 16, torch.float32, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = norm.silu(x)
    torch.testing.assert_close(z.float(), F.silu(norm(x)).float(), atol=0.05, rtol=0.02)
    seq = torch.randn(2, 16, 9)  # (B, C, L): 3-D input, the plain path
    torch.testing.assert_close(norm.silu(seq), F.silu(F.group_norm(seq, 4, norm.weight, norm.bias)))


def test_channel_dots_in_chunks_equal_the_full_product_sum():
    from hwaksan.nets.norm import _channel_dots

    D, X = torch.randn(7, 12, 5), torch.randn(7, 12, 5)
    expected = (D * X).sum(1)
    for chunk_bytes in (1, 12 * 5 * 4 * 2, 1 << 20):  # one sample, two, all at once
        torch.testing.assert_close(_channel_dots(D, X, chunk_bytes), expected)


def _reference(norm, x, add, scale, shift, silu=True):
    """silu(F.group_norm(x + add) * (1 + scale) + shift), plain NCHW PyTorch."""
    h = F.group_norm(x + add[:, :, None, None], norm.num_groups, norm.weight, norm.bias, norm.eps)
    h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    return F.silu(h) if silu else h


@pytest.mark.parametrize("condition", ["add", "scale_shift"])
def test_group_norm_silu_with_resblock_conditioning(condition, path):
    """The ResBlock's timestep conditioning (DDPM's add, ADM's scale-shift) and its gradients."""
    norm, x, dz = _case(4, 16, torch.float32, True, seed=1)
    g = torch.Generator().manual_seed(2)
    add, scale, shift = (torch.randn(3, 16, generator=g) for _ in range(3))
    if condition == "add":
        scale, shift = torch.zeros(3, 16), torch.zeros(3, 16)
        kwargs = dict(add=add)
    else:
        add = torch.zeros(3, 16)
        kwargs = dict(scale=scale, shift=shift)
    leaves = [t.detach().requires_grad_() for t in (x, add, scale, shift)]
    xs, adds, scales, shifts = leaves
    chosen = {k: dict(add=adds, scale=scales, shift=shifts)[k] for k in kwargs}
    z = norm.silu(xs, **chosen)
    got = torch.autograd.grad(z, [xs, *chosen.values(), norm.weight, norm.bias], dz)
    z_ref = _reference(norm, xs.contiguous(), adds, scales, shifts)
    want = torch.autograd.grad(z_ref, [xs, *chosen.values(), norm.weight, norm.bias], dz)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    names = ["x", *chosen, "weight", "bias"]
    for name, a, b in zip(names, got, want):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=f"d{name}")


def test_group_norm_forward_without_silu_equals_native(path):
    norm, x, dz = _case(4, 16, torch.float32, True, seed=3)
    z, grads = _grads(norm, norm, x, dz)
    z_ref, grads_ref = _grads(
        lambda x: F.group_norm(x, 4, norm.weight, norm.bias, norm.eps), norm, x.contiguous(), dz
    )
    assert z.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_fused_group_norm_variance_of_a_large_offset_map():
    """Mean 1000, spread 0.1: float32 sums of x and x^2 would lose the variance to rounding.
    (PyTorch's own channels-last forward, the fallback, is off by whole units here.)"""
    if kernels.group_norm() is None:
        pytest.skip("fused kernels switched off")
    norm, x, dz = _case(2, 8, torch.float32, True, seed=4)
    x = (1000 + 0.1 * x).contiguous(memory_format=torch.channels_last)
    ref = F.group_norm(x.double(), 2, norm.weight.double(), norm.bias.double(), norm.eps)
    torch.testing.assert_close(norm(x).double(), ref, atol=2e-3, rtol=1e-3)


def test_fused_backward_takes_a_gradient_in_nchw_layout(path):
    """The gradient arriving from downstream need not be channels-last."""
    norm, x, dz = _case(4, 16, torch.float32, True, seed=5)
    _, grads = _grads(norm.silu, norm, x, dz.contiguous())
    _, grads_ref = _grads(norm.silu, norm, x, dz.contiguous(memory_format=torch.channels_last))
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want)


def test_fused_kernels_switch_off_and_fall_back_with_a_warning(monkeypatch):
    monkeypatch.setenv("HWAKSAN_FUSED_KERNELS", "0")
    assert kernels.group_norm.__wrapped__() is None  # the uncached body: no build attempted
    monkeypatch.delenv("HWAKSAN_FUSED_KERNELS")

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr("torch.utils.cpp_extension.load", no_compiler)
    with pytest.warns(UserWarning, match="fused group_norm kernel unavailable.*Ninja is required"):
        assert kernels.group_norm.__wrapped__() is None


def test_a_kernel_that_fails_its_check_is_not_used(monkeypatch):
    """A kernel that builds but fails on this CPU (e.g. no micro-kernel for it) falls back."""

    def broken(ops):
        raise RuntimeError("Float Brgemm is only supported on X64")

    monkeypatch.setattr(kernels.checks, "check_attention", broken)
    with pytest.warns(UserWarning, match="fused attention kernel unavailable.*Brgemm"):
        assert kernels.attention.__wrapped__() is None
