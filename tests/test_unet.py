"""The U-Net: shapes, zero-init, conditioning, attention math, diffusers parity, speed paths."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from diffusers.models.embeddings import get_timestep_embedding

import hwaksan as hk
from hwaksan.errors import HwaksanError
from hwaksan.nets import (
    PRESETS,
    Attention,
    UNet,
    UNetConfig,
    build_unet,
    timestep_embedding,
    unet_tiny,
)
from hwaksan.nets.attention import attention
from hwaksan.nets.norm import GroupNorm


def _perturbed(net: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Add noise to every parameter, so zero-initialized branches carry signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return net


def _inputs(b=2, c=3, r=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, r, r, generator=g), torch.randint(0, 1000, (b,), generator=g)


@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_output_shapes(resolution, channels):
    x, t = _inputs(2, channels, resolution)
    net = build_unet("tiny", in_channels=channels, resolution=resolution)
    assert net(x, t).shape == (2, channels, resolution, resolution)
    sigma = build_unet("tiny", in_channels=channels, resolution=resolution, learn_sigma=True)
    assert sigma(x, t.float()).shape == (2, 2 * channels, resolution, resolution)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_start_at_zero(name):
    x, t = _inputs(1, 3, 32)
    out = build_unet(name)(x, t)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # zero-initialized output conv: a fresh net predicts 0


def test_class_labels_change_output_and_none_is_null_class():
    net = _perturbed(build_unet("tiny", in_channels=1, resolution=16, num_classes=10)).eval()
    x, t = _inputs(2, 1, 16)
    a, b = (
        net(x, t, class_labels=torch.tensor([3, 3])),
        net(x, t, class_labels=torch.tensor([7, 7])),
    )
    assert (a - b).abs().max() > 1e-3
    null = net(x, t, class_labels=torch.tensor([10, 10]))
    torch.testing.assert_close(net(x, t, class_labels=None), null)
    with pytest.raises(ValueError):
        _perturbed(build_unet("tiny"))(*_inputs(), class_labels=torch.tensor([1, 2]))


def test_context_enters_through_cross_attention_and_masked_tokens_do_nothing():
    net = _perturbed(build_unet("tiny", resolution=16, context_dim=24)).eval()
    x, t = _inputs(2, 3, 16)
    g = torch.Generator().manual_seed(1)
    ctx, other = torch.randn(2, 5, 24, generator=g), torch.randn(2, 5, 24, generator=g)
    assert (net(x, t, context=ctx) - net(x, t, context=other)).abs().max() > 1e-3
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
    changed = ctx.clone()
    changed[0, 3:] = 100.0  # masked-out tokens of sample 0 and 1
    changed[1, 4] = -100.0
    torch.testing.assert_close(
        net(x, t, context=ctx, context_mask=mask), net(x, t, context=changed, context_mask=mask)
    )
    # masking a token differs from keeping it
    assert (net(x, t, context=ctx) - net(x, t, context=ctx, context_mask=mask)).abs().max() > 1e-4


def test_attention_equals_naive_softmax_reference():
    torch.manual_seed(0)
    attn = Attention(32, context_dim=12, heads=4, dim_head=8)
    x, ctx = torch.randn(3, 10, 32), torch.randn(3, 7, 12)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    q = attn.to_q(x).view(3, 10, 4, 8).transpose(1, 2)  # (B, h, N, d)
    k = attn.to_k(ctx).view(3, 7, 4, 8).transpose(1, 2)  # (B, h, M, d)
    v = attn.to_v(ctx).view(3, 7, 4, 8).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)  # (B, h, N, M)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    ref = attn.to_out((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 10, 32))
    torch.testing.assert_close(attn(x, ctx, mask), ref, atol=1e-5, rtol=1e-5)
    # self-attention: context defaults to x
    k, v = attn.to_k, attn.to_v
    self_attn = Attention(32, heads=4, dim_head=8)
    q = self_attn.to_q(x).view(3, 10, 4, 8).transpose(1, 2)
    k = self_attn.to_k(x).view(3, 10, 4, 8).transpose(1, 2)
    v = self_attn.to_v(x).view(3, 10, 4, 8).transpose(1, 2)
    ref = (q @ k.transpose(-1, -2) / math.sqrt(8)).softmax(-1) @ v
    ref = self_attn.to_out(ref.transpose(1, 2).reshape(3, 10, 32))
    torch.testing.assert_close(self_attn(x), ref, atol=1e-5, rtol=1e-5)


def test_timestep_embedding_matches_diffusers():
    t = torch.tensor([0, 1, 17, 999])
    for dim in (64, 33):
        ref = get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        torch.testing.assert_close(timestep_embedding(t, dim), ref)


def test_matched_config_parameter_count_is_diffusers_within_5_percent():
    ours = UNet(UNetConfig(layers_per_block=2, attention_resolutions=(16,), num_heads=4))
    plain = UNet(UNetConfig(layers_per_block=2, use_scale_shift_norm=False))
    theirs = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128),
        layers_per_block=2, attention_head_dim=32,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    n_theirs = sum(p.numel() for p in theirs.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    assert abs(n_plain - n_theirs) / n_theirs < 0.05
    assert n_plain == n_theirs  # same blocks, same layers: additive conditioning matches exactly
    n_ours = sum(p.numel() for p in ours.parameters())  # scale-shift adds one projection row each
    assert n_ours > n_plain


def test_user_errors_raise_hwaksan_error():
    with pytest.raises(HwaksanError, match="tiny"):
        build_unet("huge")
    with pytest.raises(HwaksanError, match="divisible"):
        build_unet("small", resolution=30)
    with pytest.raises(HwaksanError, match="never reached"):
        build_unet("small", resolution=32, attention_resolutions=(64,))
    with pytest.raises(HwaksanError, match="override"):
        build_unet("tiny", colour="red")
    with pytest.raises(HwaksanError, match="unknown"):
        UNetConfig.from_dict({"channels": [32], "widht": 3})


def test_config_round_trips_through_json():
    cfg = unet_tiny(in_channels=1, resolution=16, num_classes=10, context_dim=8)
    back = UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.out_channels == 1 and isinstance(back.channels, tuple)
    assert hk.UNet is UNet and hk.UNetConfig is UNetConfig


def test_channels_last_and_bf16_agree_with_fp32_nchw():
    torch.manual_seed(0)
    cl = build_unet("tiny", resolution=16, context_dim=16, num_classes=4, channels_last=True)
    fast = _perturbed(cl).eval()
    slow = UNet(UNetConfig(**{**fast.config.to_dict(), "channels_last": False})).eval()
    slow.load_state_dict(fast.state_dict())
    x, t = _inputs(2, 3, 16)
    cond = dict(class_labels=torch.tensor([0, 2]), context=torch.randn(2, 4, 16))
    ref, out = slow(x, t, **cond), fast(x, t, **cond)
    assert out.is_contiguous(memory_format=torch.channels_last)  # activations ran channels-last
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    for net in (fast, slow):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, t, **cond)
        err = (low.float() - ref).norm() / ref.norm()
        assert err < 0.03, err


@pytest.mark.parametrize("scale_shift", [True, False])
@pytest.mark.parametrize("context_dim", [None, 16])
def test_fused_kernel_unet_equals_plain_pytorch_unet_with_gradients(
    scale_shift, context_dim, monkeypatch
):
    """The whole net, forward and backward: channels-last on the fused kernels (nets/kernels)
    against NCHW with every kernel switched off."""
    from hwaksan.nets import kernels

    torch.manual_seed(0)
    fast = build_unet("tiny", resolution=16, context_dim=context_dim, channels_last=True,
                      use_scale_shift_norm=scale_shift)  # fmt: skip
    fast = _perturbed(fast)
    slow = UNet(UNetConfig(**{**fast.config.to_dict(), "channels_last": False}))
    slow.load_state_dict(fast.state_dict())
    x, t = _inputs(3, 3, 16)
    cond = {} if context_dim is None else dict(context=torch.randn(3, 4, context_dim))

    def run(net):
        out = net(x, t, **cond)
        g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        return out, torch.autograd.grad(out, list(net.parameters()), g)

    out, grads = run(fast)
    monkeypatch.setattr(kernels, "group_norm", lambda: None)
    monkeypatch.setattr(kernels, "attention", lambda: None)
    ref, ref_grads = run(slow)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    names = [n for n, _ in fast.named_parameters()]
    for name, a, b in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-3, msg=f"d{name}")


def test_tiny_unet_overfits_one_batch():
    torch.manual_seed(0)
    net = build_unet("tiny", in_channels=1, resolution=16, num_classes=10)
    x, t = _inputs(8, 1, 16, seed=3)
    target = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    labels = torch.arange(8)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        loss = F.mse_loss(net(x, t, class_labels=labels), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_bf16_attention_path_matches_fp32_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[0, ..., 4:] = False
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    low = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask)  # the plain-matmul path
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).norm() / ref.norm() < 0.02


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_group_norm_gradients_match_native(dtype):
    torch.manual_seed(0)
    ours, ref = GroupNorm(4, 16), torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    x = (torch.randn(3, 16, 5, 6) * 2 + 1).to(dtype)
    dy = torch.randn(3, 16, 5, 6).to(dtype)
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x_ref = x.float().requires_grad_()
    y = ours(x_cl)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.backward(dy.contiguous(memory_format=torch.channels_last))
    ref(x_ref).backward(dy.float())
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.05, rtol=0.02)
    torch.testing.assert_close(y.float(), ref(x_ref).detach(), **tol)
    torch.testing.assert_close(x_cl.grad.float(), x_ref.grad, **tol)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, **tol)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, **tol)
