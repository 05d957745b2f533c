"""A control text encoder for the relation experiment: mini-CLIP's vocabulary, random word and
position embeddings, no transformer layers, so every word stays apart (README, Text-to-image).

    python scripts/words_encoder.py runs/words_clip
    hwaksan train --text-encoder runs/words_clip --context-layers 2 --init-from shapes_t2i \\
      --data shapes --resolution 32 --channels 32,64,128 --attention-resolutions 8 --steps 2200 \\
      --batch-size 64 --lr 5e-4 --warmup 100 --lr-schedule cosine --bf16 --ema-decay 0.995 \\
      --out runs/t2i_words
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from hwaksan.nets.text import load_text_encoder
from hwaksan.nets.text.mini_clip import MiniCLIP, MiniCLIPConfig, save_mini_clip

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/words_clip"
    config = dataclasses.replace(load_text_encoder("mini_clip").config, layers=0)
    torch.manual_seed(0)
    save_mini_clip(MiniCLIP(MiniCLIPConfig(text=config)), out)
    print(f"saved {out}")
