"""The U-Net's context encoder (identity at init, order-aware, blind to padding), and growing a
trained text-to-image model with it (`--init-from`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwaksan.errors import HwaksanError
from hwaksan.nets import build_unet
from hwaksan.nets.context import ContextEncoder


def _unet(context_layers: int = 0, resolution: int = 8, channels=(16, 32)) -> nn.Module:
    return build_unet("tiny", resolution=resolution, channels=channels, norm_groups=8,
                      num_heads=2, attention_resolutions=(4,), context_dim=16,
                      context_layers=context_layers)  # fmt: skip


def _randomize_zero_layers(net: nn.Module) -> None:
    """Fresh U-Nets and context encoders start with zero output layers; give them weights."""
    torch.manual_seed(1)
    for name, p in net.named_parameters():
        if any(k in name for k in ("proj_out", "conv_out", "to_out", "ff.2")):
            nn.init.normal_(p, std=0.1)


def test_a_fresh_context_encoder_is_the_identity():
    context, mask = torch.randn(3, 5, 16), torch.tensor([[1, 1, 1, 0, 0]] * 3).bool()
    assert torch.equal(ContextEncoder(16, layers=2, heads=2)(context, mask), context)


def test_it_reads_token_order_that_cross_attention_alone_cannot():
    """Cross-attention is a set operation: permuting the context tokens changes nothing. With a
    context encoder in front, the same words in another order give another prediction."""
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([300, 700])
    context = torch.randn(2, 4, 16)
    swapped = context[:, [0, 3, 2, 1]]  # "a red circle ... blue square" -> words swapped
    for layers, changes in [(0, False), (1, True)]:
        net = _unet(layers)
        _randomize_zero_layers(net)
        with torch.no_grad():
            gap = (net(x, t, context=context) - net(x, t, context=swapped)).abs().max()
        assert (gap > 1e-3) == changes, (layers, gap)


def test_padding_tokens_do_not_change_the_real_ones():
    encoder = ContextEncoder(16, layers=2, heads=2)
    _randomize_zero_layers(encoder)
    context = torch.randn(2, 3, 16)
    padded = torch.cat([context, 100 * torch.randn(2, 4, 16)], dim=1)  # (2, 7, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0]] * 2).bool()
    with torch.no_grad():
        assert torch.allclose(encoder(padded, mask)[:, :3], encoder(context), atol=1e-5)
        empty = encoder(padded, torch.zeros_like(mask))  # an all-padding row stays finite
    assert torch.isfinite(empty).all()


def test_context_layers_need_a_context():
    with pytest.raises(HwaksanError, match="context_layers=2 needs a context_dim"):
        build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, context_layers=2)


@pytest.fixture
def saved_t2i(tmp_path, monkeypatch):
    """A small trained-looking text-to-image model folder (random weights, stand-in encoder)."""
    from text_stand_in import WordEncoder

    from hwaksan import components
    from hwaksan.diffusion.schedule import NoiseSchedule
    from hwaksan.pipeline import Pipeline

    monkeypatch.setitem(components.CLASSES, "WordEncoder", "text_stand_in:WordEncoder")
    unet = _unet()
    _randomize_zero_layers(unet)
    pipe = Pipeline(unet=unet.eval(), schedule=NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 8, 8), steps=5,
                    text_encoder=WordEncoder())  # fmt: skip
    pipe.save(tmp_path / "t2i")
    return tmp_path / "t2i", pipe


def test_init_from_grows_a_trained_model_without_changing_it(saved_t2i):
    from hwaksan.runs.diffusion import init_from

    folder, source = saved_t2i
    grown = _unet(context_layers=2)
    fresh = init_from(grown, str(folder), source.text_encoder)
    assert fresh and all(k.startswith("context_encoder.") for k in fresh)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([100, 800])
    cond = source.text_encoder(["a red circle", "two blue squares"])
    kw = dict(context=cond.hidden_states, context_mask=cond.attention_mask)
    with torch.no_grad():
        assert torch.allclose(grown(x, t, **kw), source.unet(x, t, **kw), atol=1e-6)


def test_init_from_a_model_that_does_not_fit_is_one_line(saved_t2i):
    from hwaksan.runs.diffusion import init_from

    folder, source = saved_t2i
    with pytest.raises(HwaksanError, match="does not fit this one") as e:
        init_from(_unet(channels=(16, 16)), str(folder), source.text_encoder)
    assert "\n" not in str(e.value)
    with pytest.raises(HwaksanError, match="parts this one lacks"):
        init_from(build_unet("tiny", resolution=8, channels=(16, 32), norm_groups=8, num_heads=2,
                             attention_resolutions=(), context_dim=16), str(folder))  # fmt: skip
