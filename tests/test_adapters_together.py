"""LoRA, ControlNet and IP-Adapter attached at once to one pipeline (the shipped three on
`shapes_t2i_64`, through the one `load_adapter` call): each steers the images, and with every
scale at 0 the images are the base model's, bit for bit."""

import pytest
import torch
from PIL import Image

import hwaksan as hk

SHIPPED = ("shapes_t2i_64_watermark_lora", "shapes_t2i_64_controlnet_seg",
           "shapes_t2i_64_ip_adapter")  # fmt: skip


def _images():
    """A silhouette for the ControlNet (top left) and a reference for the IP-Adapter."""
    from hwaksan.data import shapes

    mask = Image.new("RGB", (64, 64))
    mask.paste((255, 255, 255), (6, 6, 26, 26))
    config = shapes.ShapesConfig(resolution=64, min_objects=1, max_objects=1)
    reference, _ = shapes.render_batch(1, seed=11, config=config)
    return mask, reference[0]


@pytest.fixture(scope="module")
def pipes():
    base = hk.load("shapes_t2i_64", device="cpu")
    adapted = hk.load("shapes_t2i_64", device="cpu")
    loaded = [adapted.load_adapter(name) for name in SHIPPED]
    return base, adapted, loaded


def _run(pipe, **extra):
    mask, reference = _images()
    inputs = dict(control_image=mask, ip_adapter_image=reference)
    inputs = {k: v for k, v in inputs.items() if k in {n for p in pipe.parts for n in p.inputs}}
    return pipe.generate(1, prompt="a red circle", steps=3, seed=2, guidance_scale=4.0,
                         output_type="pt", **inputs, **extra)  # fmt: skip


def test_all_three_load_with_one_call_each(pipes):
    _, adapted, (lora_name, controlnet, ip_adapter) = pipes
    assert adapted.get_list_adapters() == [lora_name]
    assert adapted.controlnet is controlnet
    inputs = {n for p in adapted.parts for n in p.inputs}
    assert {"control_image", "ip_adapter_image", "lora_scale"} <= inputs


def test_at_scale_zero_all_three_leave_the_base_bit_identical(pipes):
    base, adapted, _ = pipes
    adapted.set_ip_adapter_scale(0.0)
    try:
        off = _run(adapted, lora_scale=0.0, controlnet_conditioning_scale=0.0)
    finally:
        adapted.set_ip_adapter_scale(1.0)
    assert torch.equal(off, _run(base))


def test_each_of_the_three_changes_the_images(pipes):
    _, adapted, _ = pipes
    on = _run(adapted)
    adapted.set_ip_adapter_scale(0.0)
    try:
        without_ip = _run(adapted)
    finally:
        adapted.set_ip_adapter_scale(1.0)
    without_lora = _run(adapted, lora_scale=0.0)
    without_controlnet = _run(adapted, controlnet_conditioning_scale=0.0)
    for other in (without_ip, without_lora, without_controlnet):
        assert (on - other).abs().max() > 1e-2


def test_the_generate_command_takes_all_three(tmp_path):
    from click.testing import CliRunner

    from hwaksan.cli import main
    from hwaksan.images import to_pil

    mask, reference = _images()
    mask.save(tmp_path / "mask.png")
    to_pil(reference[None])[0].save(tmp_path / "reference.png")
    out = tmp_path / "out.png"
    args = ["generate", "a red circle", "--model", "shapes_t2i_64", "-n", "1", "--steps", "2",
            "--lora", SHIPPED[0], "--controlnet", SHIPPED[1],
            "--control-image", str(tmp_path / "mask.png"), "--ip-adapter", SHIPPED[2],
            "--ip-adapter-image", str(tmp_path / "reference.png"), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] >= 64
