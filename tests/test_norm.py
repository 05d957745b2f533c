"""GroupNorm.silu, the fused GroupNorm + SiLU node: forward and backward equal the native ops."""

import pytest
import torch
import torch.nn.functional as F

from hwaksan.nets.norm import GroupNorm


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
def test_group_norm_silu_equals_native_group_norm_then_silu(groups, channels, channels_last):
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
