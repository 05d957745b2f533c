"""Test data for text-to-image runs: a folder of captioned shapes scenes and a tiny mini-CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image


def write_captioned_shapes(folder: Path, n: int = 8, resolution: int = 16) -> Path:
    """n shapes scenes as PNGs with their captions in metadata.jsonl (the folder data format)."""
    from hwaksan.data.shapes import ShapesConfig, render, sample_scene

    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        scene = sample_scene(i, ShapesConfig(resolution=resolution, max_objects=2))
        Image.fromarray(render(scene)).save(folder / f"{i}.png")
        rows.append(json.dumps({"file_name": f"{i}.png", "text": scene.caption}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def save_tiny_mini_clip(folder: Path) -> Path:
    """A random mini-CLIP with a 32-wide, one-layer text tower, saved as a folder."""
    from hwaksan.data.shapes import shapes_vocabulary
    from hwaksan.nets.text.mini_clip import (
        MiniCLIP,
        MiniCLIPConfig,
        MiniCLIPTextConfig,
        save_mini_clip,
    )

    torch.manual_seed(0)
    text = MiniCLIPTextConfig(vocab=shapes_vocabulary(), width=32, layers=1, heads=2)
    save_mini_clip(MiniCLIP(MiniCLIPConfig(text=text)), folder)
    return folder
