"""Every fused kernel equals its PyTorch op, forward and backward, over generated cases: shapes,
batch 1, odd token counts, heads wider than the sequence (d > N) and narrower, strided inputs and
non-contiguous incoming gradients; the GroupNorm kernel with its add and scale-shift variants.
The kernels' one-time checks cover the shipped models' shapes and leave the global RNG alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from hwaksan.nets import kernels
from hwaksan.nets.attention import _kernel_takes, _SelfAttention
from hwaksan.nets.kernels import checks
from hwaksan.nets.norm import GroupNorm

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="fused kernels switched off")
# derandomized (the same cases every run), no example database, no slow shrinking of a failure
CASES = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 phases=[Phase.explicit, Phase.generate])  # fmt: skip


def _gradient(shape, layout: str, gen: torch.Generator) -> torch.Tensor:
    """An incoming gradient of `shape` laid out as autograd may hand it over: contiguous,
    a transposed view, a strided slice, or a broadcast (expanded, zero strides)."""
    if layout == "transposed":
        return torch.randn(*reversed(shape), generator=gen).permute(*reversed(range(len(shape))))
    if layout == "sliced":
        return torch.randn(*shape[:-1], 2 * shape[-1], generator=gen)[..., ::2]
    if layout == "expanded":
        return torch.randn(*shape[1:], generator=gen).expand(shape)
    return torch.randn(shape, generator=gen)


LAYOUTS = st.sampled_from(["contiguous", "transposed", "sliced", "expanded"])


@CASES
@given(
    B=st.integers(1, 3),
    N=st.integers(1, 80),
    heads=st.integers(1, 4),
    d=st.sampled_from([1, 3, 4, 8, 16, 32, 64, 96]),
    layout=LAYOUTS,
    seed=st.integers(0, 2**16),
)
def test_attention_kernel_equals_sdpa(B, N, heads, d, layout, seed):
    gen = torch.Generator().manual_seed(seed)
    qkv = (torch.randn(B, N, 3, heads, d, generator=gen) * 2).requires_grad_()  # (B, N, 3, h, d)
    assert _kernel_takes(qkv)
    out = _SelfAttention.apply(qkv)  # (B, N, h, d)
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (B, h, N, d)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # (B, N, h, d)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    dout = _gradient(out.shape, layout, gen)
    (got,) = torch.autograd.grad(out, qkv, dout)
    (want,) = torch.autograd.grad(ref, qkv, dout.contiguous())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@CASES
@given(
    B=st.integers(1, 3),
    H=st.integers(1, 9),
    W=st.integers(1, 9),
    groups_and_per=st.tuples(st.sampled_from([1, 2, 3, 8]), st.sampled_from([1, 3, 4, 16])),
    variant=st.sampled_from(["plain", "silu", "add", "scale_shift", "add_scale_shift"]),
    layout=LAYOUTS,
    seed=st.integers(0, 2**16),
)
def test_group_norm_kernel_equals_group_norm(B, H, W, groups_and_per, variant, layout, seed):
    groups, per = groups_and_per
    C, gen = groups * per, torch.Generator().manual_seed(seed)
    assume(per * H * W > 1)  # PyTorch's GroupNorm refuses one value per group
    norm = GroupNorm(groups, C)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(C, generator=gen))
        norm.bias.copy_(torch.randn(C, generator=gen))
    x = torch.randn(B, C, H, W, generator=gen) * 3 + 1  # (B, C, H, W)
    cond = {
        "add": torch.randn(B, C, generator=gen) if "add" in variant else None,
        "scale": torch.randn(B, C, generator=gen) if "scale" in variant else None,
        "shift": torch.randn(B, C, generator=gen) if "scale" in variant else None,
    }

    def run(x, cond, fused: bool):
        if fused:  # channels-last, the kernel's layout (the only one it takes)
            x = x.contiguous(memory_format=torch.channels_last)
            assert norm._fused(x) or H * W == 1 or C == 1
        else:
            x = x.contiguous()
        if variant == "plain":
            return norm(x) if fused else F.group_norm(x, groups, norm.weight, norm.bias, norm.eps)
        if fused:
            return norm.silu(x, **cond)
        h = x if cond["add"] is None else x + cond["add"][:, :, None, None]
        y = F.group_norm(h, groups, norm.weight, norm.bias, norm.eps)
        if cond["scale"] is not None:
            y = y * (1 + cond["scale"][:, :, None, None]) + cond["shift"][:, :, None, None]
        return F.silu(y)

    dz = None
    results = []
    for fused in (True, False):
        leaves = {k: None if c is None else c.clone().requires_grad_() for k, c in cond.items()}
        xl = x.clone().requires_grad_()
        out = run(xl, leaves, fused)
        dz = _gradient(out.shape, layout, gen) if dz is None else dz.contiguous()
        wrt = [xl, norm.weight, norm.bias] + [c for c in leaves.values() if c is not None]
        results.append((out, torch.autograd.grad(out, wrt, dz)))
    (out, got), (ref, want) = results
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=5e-4, rtol=5e-4)


def test_checks_cover_the_shipped_models_shapes_and_pass():
    """Heads of 32 channels over 16 tokens (d > N) and 64 tokens, GroupNorms of 32-128 channels."""
    assert (1, 16, 4, 32) in checks.ATTENTION_SHAPES and (1, 64, 4, 32) in checks.ATTENTION_SHAPES
    assert {c for _, _, c, _ in checks.GROUP_NORM_SHAPES} >= {32, 64, 128}
    checks.check_attention(kernels.attention())
    checks.check_group_norm(kernels.group_norm())


def test_checks_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    checks.check_attention(kernels.attention())
    checks.check_group_norm(kernels.group_norm())
    assert torch.equal(torch.get_rng_state(), before)


class _WrongBackward:
    """A kernel whose forward is right and whose backward is off at one shape only (d > N)."""

    def __init__(self, ops):
        self.ops = ops

    def forward(self, *args):
        return self.ops.forward(*args)

    def backward(self, dout, qkv, out, lse):
        dqkv = self.ops.backward(dout, qkv, out, lse)
        return dqkv * 1.01 if qkv.shape[4] > qkv.shape[1] else dqkv


def test_the_attention_check_catches_a_backward_wrong_at_one_shipped_shape():
    with pytest.raises(RuntimeError, match=r"backward differs from SDPA .*\(1, 16, 4, 32\)"):
        checks.check_attention(_WrongBackward(kernels.attention()))


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_checks_pass_when_first_reached_while_sampling(mode):
    """A kernel is first loaded inside `generate` (no_grad / inference_mode): the check's
    reference gradients must still work there, or the kernel would be dropped for nothing."""
    with mode():
        checks.check_attention(kernels.attention())
        checks.check_group_norm(kernels.group_norm())
