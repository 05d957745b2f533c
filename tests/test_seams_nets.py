"""The networks' seams, each through a tiny attachment written here: attention processors (a
recorder, a decoupled image key/value), ControlNet-style residuals, an added embedding, extra input
channels, and the encoder half the U-Net and the classifier share."""

import math

import pytest
import torch
import torch.nn as nn

from hwaksan.errors import HwaksanError
from hwaksan.nets import Attention, AttnProcessor, UNet, UNetConfig, UNetEncoder, attention_probs
from hwaksan.nets.attention import attention, attention_mask
from hwaksan.nets.unet_encoder import _Layer


def _unet(**kw) -> UNet:
    """A tiny U-Net with its zero-initialized branches made random: every path carries signal."""
    torch.manual_seed(0)
    cfg = dict(in_channels=3, resolution=8, channels=(8, 16), norm_groups=4, num_heads=2,
               attention_resolutions=(4,))  # fmt: skip
    net = UNet(UNetConfig(**{**cfg, **kw}))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def _inputs(b=2, c=3, r=8):
    g = torch.Generator().manual_seed(2)
    return torch.randn(b, c, r, r, generator=g), torch.tensor([3, 700])[:b]


class Recorder:
    """Keeps every attention's probabilities (with their graph) and returns the default output."""

    kwarg_names = ()

    def __init__(self):
        self.probs: list[torch.Tensor] = []

    def __call__(self, attn, x, context=None, context_mask=None, **kwargs):
        q, k, _ = attn.qkv(x, context)  # (B, h, N, d), (B, h, M, d)
        self.probs.append(attention_probs(q, k, attention_mask(context_mask)))  # (B, h, N, M)
        return AttnProcessor()(attn, x, context, context_mask)


class ImageTokens(nn.Module):
    """IP-Adapter's decoupled cross-attention (Ye et al. 2023, eq. 5): the text attention plus
    `ip_scale` times attention of the same queries to image tokens through a second key/value."""

    kwarg_names = ("image_tokens", "ip_scale")

    def __init__(self, attn: Attention, image_dim: int):
        super().__init__()
        inner = attn.to_q.out_features
        self.to_k_ip = nn.Linear(image_dim, inner, bias=False)
        self.to_v_ip = nn.Linear(image_dim, inner, bias=False)

    def forward(self, attn, x, context=None, context_mask=None, image_tokens=None, ip_scale=1.0,
                **kwargs):  # fmt: skip
        q, k, v = attn.qkv(x, context)  # (B, h, N, d), (B, h, M, d) x 2
        out = attention(q, k, v, attention_mask(context_mask))  # (B, h, N, d)
        if image_tokens is not None:
            k_ip = attn.split_heads(self.to_k_ip(image_tokens))  # (B, h, I, d)
            v_ip = attn.split_heads(self.to_v_ip(image_tokens))  # (B, h, I, d)
            out = out + ip_scale * attention(q, k_ip, v_ip)  # (B, h, N, d)
        return attn.to_out(attn.merge_heads(out))  # (B, N, query_dim)


def test_recorder_processor_keeps_hand_computed_probabilities_with_their_graph():
    torch.manual_seed(0)
    attn = Attention(32, context_dim=12, heads=4, dim_head=8)
    x, ctx = torch.randn(3, 10, 32, requires_grad=True), torch.randn(3, 7, 12)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    plain = attn(x, ctx, mask)
    attn.set_processor(recorder := Recorder())
    assert torch.equal(attn(x, ctx, mask), plain)  # the recorder changes nothing
    q = attn.to_q(x).view(3, 10, 4, 8).transpose(1, 2)  # (B, h, N, d)
    k = attn.to_k(ctx).view(3, 7, 4, 8).transpose(1, 2)  # (B, h, M, d)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~mask[:, None, None], -math.inf)
    (probs,) = recorder.probs
    torch.testing.assert_close(probs, scores.softmax(-1))
    assert probs[1, :, :, 5:].abs().max() == 0  # masked tokens get no attention
    (grad,) = torch.autograd.grad(probs[..., 0].sum(), x)  # the graph reaches the layer's input
    assert grad.abs().max() > 0


def test_recorder_on_a_unet_sees_every_cross_attention_and_leaves_the_output_alone():
    net = _unet(context_dim=6)
    x, t = _inputs()
    ctx = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(3))
    ref = net(x, t, context=ctx)
    recorder = Recorder()
    names = [n for n in net.attn_processors if n.endswith("attn2.processor")]
    net.set_attn_processor(
        {n: recorder if n in names else p for n, p in net.attn_processors.items()}
    )
    assert torch.equal(net(x, t, context=ctx), ref)
    assert len(recorder.probs) == len(names) == 4  # 4x4 level: 1 down, 1 mid, 2 up
    for probs in recorder.probs:
        assert probs.shape[-1] == 5 and torch.allclose(probs.sum(-1), torch.ones(()))


def test_attn_processors_round_trip_and_a_module_processor_is_saved_with_the_weights():
    net = _unet(context_dim=6)
    procs = net.attn_processors
    assert "mid.0.attn.blocks.0.attn2.processor" in procs
    assert all(type(p) is AttnProcessor for p in procs.values())
    assert not any(n.startswith("context_encoder") for n in procs)
    net.set_attn_processor(procs)
    assert all(net.attn_processors[n] is p for n, p in procs.items())
    with pytest.raises(HwaksanError, match="missing"):
        net.set_attn_processor({"mid.0.attn.blocks.0.attn2.processor": AttnProcessor()})
    layer = net.mid[0].attn.blocks[0].attn2
    layer.set_processor(ImageTokens(layer, image_dim=4))
    assert "mid.0.attn.blocks.0.attn2.processor.to_k_ip.weight" in net.state_dict()
    net.set_attn_processor(AttnProcessor())  # a plain processor replaces the module one
    assert not any("processor" in k for k in net.state_dict())


def test_cross_attention_kwargs_reach_the_processors_and_a_typo_is_an_error():
    net = _unet(context_dim=6)
    x, t = _inputs()
    ctx = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(3))
    image = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(4))
    ref = net(x, t, context=ctx)
    with pytest.raises(HwaksanError, match="ip_scale"):
        net(x, t, context=ctx, cross_attention_kwargs={"ip_scale": 0.0})  # nothing reads it yet
    for name, m in net.named_modules():
        if name.endswith("attn2"):
            m.set_processor(ImageTokens(m, image_dim=4))
    kw = dict(context=ctx, cross_attention_kwargs={"image_tokens": image, "ip_scale": 0.0})
    torch.testing.assert_close(net(x, t, **kw), ref, atol=1e-5, rtol=1e-5)
    kw["cross_attention_kwargs"]["ip_scale"] = 1.0
    assert (net(x, t, **kw) - ref).abs().max() > 1e-3  # the image tokens steer the output
    with pytest.raises(HwaksanError, match="ip_sacle"):
        net(x, t, context=ctx, cross_attention_kwargs={"ip_sacle": 1.0})


def test_residuals_added_to_the_skips_and_the_middle_equal_hand_patching():
    """ControlNet's inputs: one residual per skip (added where the up path reads it) and one
    after the middle, against forward hooks that patch the same tensors."""
    net = _unet()
    x, t = _inputs()
    g = torch.Generator().manual_seed(5)
    skips = net.encode(x, t).skips
    down = [torch.randn(s.shape, generator=g) for s in skips]
    mid = torch.randn(skips[-1].shape, generator=g)
    out = net(x, t, down_block_additional_residuals=down, mid_block_additional_residual=mid)

    pending = list(down)

    def patch_skip(layer, args):  # the up layer's input is cat([h, skip]): add to the skip half
        r = pending.pop()
        h = args[0]
        return (torch.cat([h[:, : -r.shape[1]], h[:, -r.shape[1] :] + r], 1), *args[1:])

    hooks = [m.register_forward_pre_hook(patch_skip) for m in net.up if isinstance(m, _Layer)]
    hooks.append(net.mid[-1].register_forward_hook(lambda m, a, out: out + mid))
    torch.testing.assert_close(out, net(x, t), atol=1e-5, rtol=1e-5)
    for h in hooks:
        h.remove()
    assert not pending and (out - net(x, t)).abs().max() > 1e-3
    with pytest.raises(HwaksanError, match="skip connections"):
        net(x, t, down_block_additional_residuals=down[:-1])


def test_added_embedding_equals_adding_it_to_the_time_embedding_by_a_hook():
    net = _unet(num_classes=3)
    x, t = _inputs()
    labels = torch.tensor([0, 2])
    extra = torch.randn(2, net.embed_dim, generator=torch.Generator().manual_seed(6))
    out = net(x, t, labels, added_embedding=extra)
    hook = net.time_embedding.register_forward_hook(lambda m, a, emb: emb + extra)
    torch.testing.assert_close(out, net(x, t, labels), atol=1e-6, rtol=1e-6)
    hook.remove()
    assert (out - net(x, t, labels)).abs().max() > 1e-3


def test_extra_input_channels_with_zero_weights_change_nothing():
    net = _unet()
    wide = UNet(UNetConfig(**{**net.config.to_dict(), "concat_channels": 2})).eval()
    weights = net.state_dict()
    w = weights["conv_in.weight"]  # (C0, 3, 3, 3)
    weights["conv_in.weight"] = torch.cat([w, torch.zeros(w.shape[0], 2, 3, 3)], 1)
    wide.load_state_dict(weights)
    x, t = _inputs()
    low_res = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(7))
    assert wide.config.out_channels == 3
    assert torch.equal(wide(x, t, concat=low_res), net(x, t))
    with pytest.raises(HwaksanError, match="2 extra input channels, got none"):
        wide(x, t)
    with pytest.raises(HwaksanError, match="got 1"):
        wide(x, t, concat=low_res[:, :1])
    with pytest.raises(HwaksanError, match="0 extra input channels"):
        net(x, t, concat=low_res)
    old = {k: v for k, v in net.config.to_dict().items() if k != "concat_channels"}
    assert UNetConfig.from_dict(old).concat_channels == 0  # config.json from before the field


def test_the_encoder_alone_is_the_unets_down_half():
    """A standalone `UNetEncoder` (what a ControlNet copies) loads the U-Net's own weights and
    computes the same skips, middle output and embedding."""
    net = _unet(context_dim=6, context_layers=1)
    encoder = UNetEncoder(net.config)
    missing, unexpected = encoder.load_state_dict(net.state_dict(), strict=False)
    assert not missing and all(
        k.split(".")[0] in ("up", "norm_out", "conv_out") for k in unexpected
    )
    x, t = _inputs()
    ctx = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(3))
    ours, theirs = encoder(x, t, context=ctx), net.encode(x, t, context=ctx)
    assert len(ours.skips) == len(encoder.skip_channels)
    for a, b in zip([ours.h, ours.emb, *ours.skips], [theirs.h, theirs.emb, *theirs.skips]):
        assert torch.equal(a, b)
    assert [s.shape[1] for s in ours.skips] == encoder.skip_channels
