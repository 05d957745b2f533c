"""The U-Net's speed paths compute the textbook op: sub-pixel Upsample, oneDNN Linear, fused QKV."""

import pytest
import torch
import torch.nn.functional as F

from hwaksan.nets.attention import Attention
from hwaksan.nets.linear import Linear
from hwaksan.nets.resnet import Upsample


def _grads(out, inputs, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.autograd.grad(out, inputs, torch.randn(out.shape, generator=g))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (3, 16, 4, 4), (1, 4, 1, 3)])
def test_upsample_equals_nearest_repeat_then_conv(shape, channels_last):
    torch.manual_seed(0)
    up = Upsample(shape[1])
    x = torch.randn(shape)
    if channels_last:
        up, x = (
            up.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    x.requires_grad_()
    params = (x, up.conv.weight, up.conv.bias)
    y = up(x)
    ref = up.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert y.shape == ref.shape and y.is_contiguous(memory_format=layout)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(_grads(y, params), _grads(ref, params)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_upsample_keeps_the_autocast_dtype():
    up, x = Upsample(8), torch.randn(2, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, ref = up(x), up.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    assert y.dtype == ref.dtype == torch.bfloat16
    assert (y.float() - ref.float()).norm() / ref.float().norm() < 0.02


@pytest.mark.parametrize("shape", [(2, 9, 12), (1, 5, 12), (4, 12)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_f_linear(shape, bias):
    torch.manual_seed(0)
    lin = Linear(12, 7, bias=bias)
    x = torch.randn(shape, requires_grad=True)
    params = (x, lin.weight) + ((lin.bias,) if bias else ())
    y, ref = lin(x), F.linear(x, lin.weight, lin.bias)
    assert y.shape == ref.shape and y.is_contiguous()
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(_grads(y, params), _grads(ref, params)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert list(lin.state_dict()) == list(torch.nn.Linear(12, 7, bias=bias).state_dict())


def test_linear_under_autocast_is_the_bf16_f_linear():
    lin, x = Linear(12, 7), torch.randn(2, 9, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, ref = lin(x), F.linear(x, lin.weight, lin.bias)
    assert y.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_qkv_self_attention_equals_three_projections(bias, monkeypatch):
    torch.manual_seed(0)
    attn = Attention(16, heads=4, dim_head=4, bias=bias)
    x = torch.randn(2, 9, 16, requires_grad=True)
    params = [x, *attn.parameters()]
    assert attn._plain_projections()
    y = attn(x)
    got = _grads(y, params)
    monkeypatch.setattr(Attention, "_plain_projections", lambda self: False)
    ref = attn(x)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(got, _grads(ref, params)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fused_qkv_steps_aside_for_hooks_and_wrappers():
    """A hook or a wrapper on to_q (LoRA, a probe) must see its call: no fusion then."""
    attn, x, seen = Attention(16, heads=4, dim_head=4), torch.randn(2, 9, 16), []
    handle = attn.to_q.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    attn(x)
    assert seen == [torch.Size([2, 9, 16])] and not attn._plain_projections()
    handle.remove()
    attn.to_k = torch.nn.Sequential(attn.to_k)  # any wrapper
    assert not attn._plain_projections()
    assert attn(x).shape == (2, 9, 16)


@pytest.mark.parametrize(
    "B, N, heads, d",
    # d > N (16 tokens of 32-wide heads: the shipped 64 px model's middle block) once overflowed
    # the backward's N x N buffer and corrupted the heap (layout guidance crashed)
    [(2, 9, 4, 4), (3, 64, 2, 32), (1, 300, 1, 16), (1, 16, 4, 32), (2, 3, 2, 64), (1, 1, 1, 8)],
)
def test_self_attention_kernel_equals_sdpa(B, N, heads, d):
    from hwaksan.nets import kernels
    from hwaksan.nets.attention import _kernel_takes, _SelfAttention

    torch.manual_seed(0)
    qkv = (torch.randn(B, N, 3, heads, d) * 2).requires_grad_()
    if not _kernel_takes(qkv):
        pytest.skip("fused kernels switched off")
    assert kernels.attention() is not None
    out = _SelfAttention.apply(qkv)  # (B, N, h, d)
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    (got,), (want,) = _grads(out, [qkv]), _grads(ref, [qkv])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_long_sequences_go_to_sdpa():
    """Past KERNEL_MAX_TOKENS the kernel's per-head N x N scores leave the cache: SDPA instead."""
    from hwaksan.nets.attention import KERNEL_MAX_TOKENS, _kernel_takes

    assert not _kernel_takes(torch.randn(1, KERNEL_MAX_TOKENS + 1, 3, 1, 4))
