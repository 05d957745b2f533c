"""Training a LoRA on a frozen text-to-image model (`hwaksan train-lora`), and the watermark look
of the shapes world it learns in the shipped example."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from torch import nn

import hwaksan as hk
from hwaksan.data.shapes import ShapesConfig, detect, render_batch, shapes_vocabulary
from hwaksan.data.shapes.watermark import has_watermark, watermark_rate
from hwaksan.images import to_pil
from hwaksan.nets import build_unet
from hwaksan.nets.adapters import lora_layers
from hwaksan.nets.text.mini_clip import MiniCLIPTextConfig, MiniCLIPTextModel
from hwaksan.pipeline import Pipeline
from hwaksan.runs.lora import LoRARun, run_lora
from hwaksan.train.loop import TrainConfig


def _base_folder(path) -> Pipeline:
    torch.manual_seed(0)
    config = MiniCLIPTextConfig(vocab=shapes_vocabulary(), max_length=16, width=16, layers=1,
                                heads=2)  # fmt: skip
    unet = build_unet("tiny", resolution=16, channels=(16, 32), norm_groups=8, num_heads=2,
                      attention_resolutions=(8,), context_dim=16)  # fmt: skip
    for name, p in unet.named_parameters():
        if "conv2" in name or "proj_out" in name or "conv_out" in name:
            nn.init.normal_(p, std=0.1)
    pipe = Pipeline(unet=unet.eval(), schedule=hk.NoiseSchedule.cosine(100),
                    prediction_type="v_prediction", image_shape=(3, 16, 16), steps=2,
                    text_encoder=MiniCLIPTextModel(config).eval())  # fmt: skip
    pipe.save(path)
    return pipe


def _captioned_folder(path, n: int = 6) -> None:
    images, scenes = render_batch(n, seed=3, config=ShapesConfig(resolution=16, max_objects=1))
    path.mkdir()
    with open(path / "metadata.jsonl", "w") as f:
        for i, (image, scene) in enumerate(zip(to_pil(images), scenes)):
            image.save(path / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": scene.caption}) + "\n")


def _base_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own (base) tensors under their unwrapped names."""
    return {k.replace(".base_layer.", "."): v.clone() for k, v in module.state_dict().items()
            if ".lora_" not in k}  # fmt: skip


def test_train_lora_trains_only_the_lora_and_its_file_reproduces_it(tmp_path):
    base = _base_folder(tmp_path / "base")
    _captioned_folder(tmp_path / "data")
    before = {"unet": _base_tensors(base.unet), "text": _base_tensors(base.text_encoder)}
    config = TrainConfig(out_dir=str(tmp_path / "run"), steps=3, batch_size=4, lr=1e-2,
                         ema_decay=None, progress=False, checkpoint_every=3)  # fmt: skip
    run = LoRARun(base=str(tmp_path / "base"), data=str(tmp_path / "data"), rank=2,
                  lora_dropout=0.1, text_encoder_modules=("to_q", "to_v"), num_samples=0,
                  train=config)  # fmt: skip
    pipe, result = run_lora(run)
    assert result.step == 3
    for name, module in (("unet", pipe.unet), ("text", pipe.text_encoder)):
        after = _base_tensors(module)
        assert after.keys() == before[name].keys()
        assert all(torch.equal(after[k], before[name][k]) for k in after), name  # frozen base
        assert all(layer.lora_B["default"].weight.abs().sum() > 0
                   for layer in lora_layers(module).values())  # fmt: skip
    fresh = hk.load(tmp_path / "base")
    fresh.load_lora_weights(tmp_path / "run" / "lora")
    kwargs = dict(prompt="a red circle", seed=0, output_type="pt")
    assert torch.equal(fresh.generate(2, **kwargs), pipe.generate(2, **kwargs))


def test_the_watermark_look_is_read_back_and_leaves_the_objects_alone():
    config = ShapesConfig(resolution=64, max_objects=2)
    plain, scenes = render_batch(64, seed=5, config=config)
    marked, _ = render_batch(64, seed=5, config=ShapesConfig(64, max_objects=2, watermark=True))
    assert watermark_rate(marked) == 1.0 and watermark_rate(plain) == 0.0
    assert not (marked - plain)[:, :, :56].any()  # the mark only touches the corner
    same = sum(detect(a) == detect(b) for a, b in zip(plain, marked)) / len(scenes)
    assert same >= 0.9  # a 9-pixel mark is a speck to the detector unless it touches an object
    ds = hk.data.shapes.ShapesDataset(ShapesConfig(32, watermark=True), length=2)
    assert has_watermark(ds[0]["image"])  # a tensor in [-1, 1]
    assert has_watermark(np.asarray(to_pil(ds[1]["image"][None])[0]))  # a uint8 array
    assert "watermark" not in config.to_dict()  # older configs read back unchanged
    assert ShapesConfig.from_dict(ShapesConfig(64, watermark=True).to_dict()).watermark
    assert not has_watermark(Image.new("RGB", (64, 64)))


def test_generate_cli_loads_a_lora_and_scale_zero_is_the_base(tmp_path):
    from click.testing import CliRunner

    from hwaksan.cli import main
    from hwaksan.nets.adapters import inject_lora, lora_target_names

    pipe = _base_folder(tmp_path / "base")
    inject_lora(pipe.unet, lora_target_names(pipe.unet), r=2, lora_alpha=2.0)
    for layer in lora_layers(pipe.unet).values():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
    pipe.save_lora_weights(tmp_path / "lora")
    args = ["generate", "a red circle", "--model", str(tmp_path / "base"), "-n", "1",
            "--steps", "2", "--scale", "1"]  # fmt: skip
    runner = CliRunner()
    for extra, out in [([], "base"), (["--lora-scale", "0"], "zero"), ([], "lora")]:
        lora = [] if out == "base" else ["--lora", str(tmp_path / "lora")]
        result = runner.invoke(main, [*args, *lora, *extra, "--out", str(tmp_path / f"{out}.png")])
        assert result.exit_code == 0, result.output
    image = {k: np.asarray(Image.open(tmp_path / f"{k}.png")) for k in ("base", "zero", "lora")}
    assert np.array_equal(image["zero"], image["base"])
    assert not np.array_equal(image["lora"], image["base"])
    result = runner.invoke(main, [*args, "--lora", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no LoRA file at" in result.output
