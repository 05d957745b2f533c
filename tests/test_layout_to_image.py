"""Layout-to-image: layout tokens (each object its label and box, on a grid or as Fourier
features) round-trip, reach the network by cross-attention, train with the U-Net, and load from
a folder."""

from __future__ import annotations

import pytest
import torch

import hwaksan as hk
from hwaksan.data import shapes
from hwaksan.errors import HwaksanError
from hwaksan.nets.layout import (
    LayoutEncoder,
    LayoutEncoderConfig,
    fourier_features,
    layout_from_tokens,
    layout_tokens,
)
from hwaksan.train.layout import LayoutConditioned, scene_layout, shapes_labels

CONFIG = LayoutEncoderConfig(labels=shapes_labels(), grid=16, max_objects=3, width=32,
                             layers=1, heads=2)  # fmt: skip
FOURIER = LayoutEncoderConfig(labels=shapes_labels(), boxes="fourier", frequencies=6,
                              max_objects=3, width=32, layers=1, heads=2)  # fmt: skip
BOTH = pytest.mark.parametrize("config", [CONFIG, FOURIER], ids=["grid", "fourier"])


def _scenes(n=40):
    config = shapes.ShapesConfig(resolution=64, min_objects=1, max_objects=3)
    return shapes.render_batch(n, seed=5, config=config)[1]


def test_layout_tokens_of_a_scene_round_trip():
    """Tokens -> layout: every object's label; its box within half a grid step on the grid, and
    the encoder reads that quantized layout exactly as it reads the scene's own."""
    step = 1 / (CONFIG.grid - 1)
    encoder = LayoutEncoder(CONFIG).eval()
    for scene in _scenes():
        layout = scene_layout(scene)
        tokens, mask = layout_tokens(layout, CONFIG)
        back = layout_from_tokens(tokens, mask, CONFIG)
        assert [label for label, _ in back] == [f"{o.color} {o.shape}" for o in scene.objects]
        for (_, box), (_, want) in zip(back, layout):
            assert max(abs(a - b) for a, b in zip(box, want)) <= step / 2 + 1e-6
        again = layout_tokens([(label, _widen(box)) for label, box in back], CONFIG)
        assert torch.equal(again[1], mask)
        with torch.no_grad():
            a, b = (
                encoder.encode(tokens[None], mask[None]),
                encoder.encode(again[0][None], mask[None]),
            )
        assert torch.equal(a.hidden_states, b.hidden_states)


def test_fourier_tokens_keep_the_exact_box():
    for scene in _scenes(10):
        layout = scene_layout(scene)
        back = layout_from_tokens(*layout_tokens(layout, FOURIER), FOURIER)
        for (label, box), (want_label, want) in zip(back, layout):
            assert label == want_label
            assert max(abs(a - b) for a, b in zip(box, want)) < 1e-6


def test_fourier_features_are_the_sines_and_cosines_of_octaves():
    v = torch.tensor([[0.25, 0.5]])
    f = fourier_features(v, 3)  # [sin(pi 2^k v_j) for j, k], then the cosines
    angles = torch.tensor([[0.25, 0.5, 1.0, 0.5, 1.0, 2.0]]) * torch.pi
    assert torch.allclose(f, torch.cat([angles.sin(), angles.cos()], -1), atol=1e-6)


def test_a_box_moved_less_than_a_grid_step_is_seen_only_by_fourier_tokens():
    """One 64 px image pixel: inside one of the 16 grid cells, so the grid encoder cannot tell
    the two boxes apart; the Fourier encoder can."""
    torch.manual_seed(0)
    a = [("red circle", (0.20, 0.20, 0.50, 0.50))]
    b = [("red circle", (0.20 + 1 / 64, 0.20, 0.50 + 1 / 64, 0.50))]
    for config, differs in [(CONFIG, False), (FOURIER, True)]:
        encoder = LayoutEncoder(config).eval()
        with torch.no_grad():
            ha, hb = encoder([a]).hidden_states, encoder([b]).hidden_states
        assert (not torch.equal(ha, hb)) is differs, config.boxes


def test_unknown_box_kinds_are_refused():
    with pytest.raises(HwaksanError, match="'grid' or 'fourier'"):
        LayoutEncoder(LayoutEncoderConfig(labels=shapes_labels(), boxes="polar"))


def _widen(box):
    """A box on the grid kept valid (x0 < x1) when an object spans less than one grid step."""
    x0, y0, x1, y1 = box
    return (x0, y0, max(x1, x0 + 1e-6), max(y1, y0 + 1e-6))


@BOTH
def test_padding_tokens_change_nothing_and_the_empty_layout_has_its_null_token(config):
    torch.manual_seed(0)
    encoder = LayoutEncoder(config).eval()
    tokens, mask = encoder.tokenize([[("red circle", (0.1, 0.1, 0.4, 0.4))], []])
    assert mask.sum(1).tolist() == [2, 1]
    noisy = tokens.clone()
    noisy[~mask] = 5  # other ids in the padding
    with torch.no_grad():
        a, b = encoder.encode(tokens, mask), encoder.encode(noisy, mask)
    assert torch.allclose(a.hidden_states[mask], b.hidden_states[mask], atol=1e-6)


def _unet():
    torch.manual_seed(0)
    unet = hk.UNet(hk.UNetConfig(in_channels=3, out_channels=3, resolution=8, channels=(16, 32),
                                 layers_per_block=1, attention_resolutions=(4,), num_heads=2,
                                 norm_groups=8, context_dim=32))  # fmt: skip
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unet


@BOTH
def test_the_layout_reaches_the_network_and_trains_its_encoder(config):
    torch.manual_seed(0)
    model = LayoutConditioned(_unet(), LayoutEncoder(config))
    tokens, mask = model.layout_encoder.tokenize([[("red circle", (0.1, 0.1, 0.5, 0.5))]] * 2)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([100, 500])
    model(x, t, tokens, mask).pow(2).mean().backward()
    box_part = {"grid": "coordinate_embeddings", "fourier": "box_mlp"}[config.boxes]
    grads = [p.grad for p in getattr(model.layout_encoder, box_part).parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    pipe = hk.Pipeline(unet=model.unet.eval(), schedule=hk.NoiseSchedule.cosine(100), steps=3,
                       prediction_type="v_prediction", image_shape=(3, 8, 8),
                       layout_encoder=model.layout_encoder.eval())  # fmt: skip
    left = pipe.generate(1, layout=[("red circle", (0.0, 0.0, 0.4, 0.4))], output_type="pt")
    right = pipe.generate(1, layout=[("red circle", (0.6, 0.6, 1.0, 1.0))], output_type="pt")
    assert (left - right).abs().max() > 1e-4


@pytest.mark.parametrize("boxes", ["grid", "fourier"])
def test_a_layout_run_trains_and_its_folder_loads(tmp_path, boxes):
    from hwaksan.runs.layout import LayoutRun, run_layout
    from hwaksan.train.loop import TrainConfig

    run = LayoutRun(resolution=16, scenes=8, autoencoder=None, sample_steps=2,
                    encoder=dict(width=32, layers=1, heads=2, boxes=boxes),
                    unet_overrides=dict(channels=(16, 32), norm_groups=8,
                                        attention_resolutions=(8,), num_heads=2),
                    train=TrainConfig(out_dir=str(tmp_path / "run"), steps=2, batch_size=4,
                                      progress=False))  # fmt: skip
    pipe, _ = run_layout(run)
    back = hk.load(tmp_path / "run" / "model", device="cpu")
    assert isinstance(back.layout_encoder, LayoutEncoder)
    assert back.layout_encoder.config.boxes == boxes
    layout = [("blue square", (0.2, 0.2, 0.7, 0.7))]
    assert torch.allclose(back.generate(1, layout=layout, output_type="pt"),
                          pipe.generate(1, layout=layout, output_type="pt"), atol=1e-5)  # fmt: skip


@pytest.mark.parametrize(
    "layout, match",
    [
        ([("pink circle", (0, 0, 0.5, 0.5))], "unknown layout label"),
        ([("red circle", (0.5, 0, 0.4, 0.5))], "x0 < x1"),
        ([("red circle", (0, 0, 0.5, 0.5))] * 4, "at most 3"),
        (["red circle"], r"\(label, \(x0, y0, x1, y1\)\)"),
    ],
)
def test_bad_layouts_are_one_line_errors(layout, match):
    with pytest.raises(HwaksanError, match=match):
        layout_tokens(layout, CONFIG)


def test_a_model_without_a_layout_encoder_takes_no_layout():
    pipe = hk.Pipeline(unet=_unet().eval(), schedule=hk.NoiseSchedule.cosine(100), steps=2,
                       prediction_type="v_prediction", image_shape=(3, 8, 8))  # fmt: skip
    with pytest.raises(HwaksanError, match="not a layout-to-image model"):
        pipe.generate(1, layout=[("red circle", (0, 0, 0.5, 0.5))])


def test_hwaksan_generate_layout_writes_the_grid(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from hwaksan.cli import main

    torch.manual_seed(0)
    hk.Pipeline(unet=_unet().eval(), schedule=hk.NoiseSchedule.cosine(100), steps=2,
                prediction_type="v_prediction", image_shape=(3, 8, 8),
                layout_encoder=LayoutEncoder(CONFIG).eval()).save(tmp_path / "layout")  # fmt: skip
    out = tmp_path / "grid.png"
    box = ["0.1", "0.1", "0.5", "0.5"]
    result = CliRunner().invoke(main, ["generate", "--model", str(tmp_path / "layout"),
                                       "--layout", "red circle", *box, "--layout", "blue square",
                                       "0.5", "0.5", "0.9", "0.9", "-n", "3", "--scale", "1",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (3 * 9 + 1, 9 + 1)
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "a red circle",
            "--model",
            str(tmp_path / "layout"),
            "--layout",
            "red circle",
            *box,
        ],
    )
    assert result.exit_code == 2 and "not PROMPTs" in result.stderr


def test_the_shipped_layout_model_puts_each_object_in_its_box():
    from hwaksan.data.shapes import detect
    from hwaksan.eval.control_score import box_iou

    pipe = hk.load("shapes_layout", device="cpu")
    layout = [("red circle", (0.1, 0.1, 0.4, 0.4)), ("blue square", (0.55, 0.5, 0.9, 0.85))]
    image = pipe.generate(1, layout=layout, steps=10, seed=0, output_type="pt")[0]
    found = {f"{d.color} {d.shape}": d.box for d in detect(image)}
    for label, box in layout:
        assert label in found, found
        assert box_iou([v * 64 for v in box], found[label]) > 0.6
