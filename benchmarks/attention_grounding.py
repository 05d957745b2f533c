"""Where a text-to-image U-Net's cross-attention looks: the share of each object word's attention
that falls inside that object's mask, on fresh two-object scenes the models never saw.

For each scene, its relation prompt ("a red circle to the left of a blue square"), the scene's
image noised to timestep t (latent models: its latents), one U-Net call; then A_in / A_all per
object token, per cross-attention layer (what the token grounding loss trains, and what layout
guidance reads). Chance is the objects' share of the image.

    python benchmarks/attention_grounding.py --model shapes_t2i_64 [--model DIR ...] [--n 200]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

TIMESTEPS = (800, 500, 200)


@torch.no_grad()
def inside_share(pipe, n: int, seed: int) -> dict:
    """Mean A_in / A_all over object tokens, per timestep and cross-attention layer, and chance."""
    from prompt_score import PROMPT_SEED, relation_prompts

    from hwaksan.data.shapes import ShapesConfig, sample_scene
    from hwaksan.data.shapes.caption_parser import mention_phrases
    from hwaksan.data.shapes.renderer import render, scene_rng, to_tensor
    from hwaksan.guidance.attention_maps import CrossAttentionMaps
    from hwaksan.train.grounding import TokenGrounding, inside_share, shapes_object_masks

    R = pipe.image_shape[-1]
    config = ShapesConfig(resolution=R, min_objects=2, max_objects=2)
    scenes = [sample_scene(scene_rng(PROMPT_SEED + 1, i), config) for i in range(n)]
    prompts = relation_prompts(n, R)  # the same scenes' relation prompts
    images = to_tensor(np.stack([render(s) for s in scenes]))
    x0 = images if pipe.autoencoder is None else (
        pipe.autoencoder.encode_latents(images) * pipe.latent_scale)  # fmt: skip
    grounding = TokenGrounding(shapes_object_masks(scenes), pipe.text_encoder.tokenize,
                               mention_phrases)  # fmt: skip
    cond = pipe.encode_prompt(prompts)
    L = cond["context"].shape[1]
    token_objects, masks = grounding.targets(prompts, torch.arange(n), L)
    valid = token_objects.sum(-1) > 0  # (n, L)
    g = torch.Generator().manual_seed(seed)
    out = {"chance": float(masks.float().sum((1, 2, 3)).mean() / masks[0, 0].numel() / 2)}
    recorder = CrossAttentionMaps(pipe.unet)
    for t in TIMESTEPS:
        a = pipe.schedule.alphas_cumprod[t]
        noise = torch.randn(x0.shape, generator=g)
        x_t = a.sqrt().float() * x0 + (1 - a).sqrt().float() * noise
        with recorder:
            pipe.unet(x_t, torch.full((n,), t), **cond)
        for i, (probs, (H, W)) in enumerate(recorder.maps):
            share = inside_share(probs, (H, W), token_objects, masks)  # (n, L)
            out[f"t={t} layer {i} ({H}x{W})"] = float(share[valid].mean())
    return out


def main() -> None:
    from report import write_report

    from hwaksan.model_folder import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="a model folder or shipped name (repeat)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--name", default="attention_grounding")
    args = ap.parse_args()
    start, rows = time.perf_counter(), []
    for model in args.model or ["shapes_t2i_64"]:
        pipe = load(model, device="cpu")
        rows.append({"model": str(model), **inside_share(pipe, args.n, seed=0)})
        print(rows[-1], flush=True)
    for r in rows:
        for t in TIMESTEPS:
            layers = [v for k, v in r.items() if k.startswith(f"t={t} layer")]
            r[f"t={t}"], r[f"t={t} best"] = sum(layers) / len(layers), max(layers)
    keys = [f"t={t}{s}" for t in TIMESTEPS for s in ("", " best")]
    lines = [
        f"# Cross-attention inside the named object ({args.n} fresh two-object scenes)",
        "",
        f"{platform.machine()}, torch {torch.__version__}, "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, "
        f"{time.perf_counter() - start:.0f} s. `python benchmarks/attention_grounding.py "
        + " ".join(sys.argv[1:]) + "`",
        "",
        "Share of each object word's cross-attention inside that object's mask (mean over the "
        "prompt's color and shape tokens), averaged over the cross-attention layers and in the "
        "best layer; chance = the mean object's share of the image. Per layer in the JSON.",
        "",
        "| model | chance | " + " | ".join(keys) + " |",
        "|" + "---|" * (2 + len(keys)),
        *(f"| {r['model']} | {r['chance']:.2f} | " + " | ".join(f"{r[k]:.2f}" for k in keys)
          + " |" for r in rows),
    ]  # fmt: skip
    write_report(args.name, lines, rows)


if __name__ == "__main__":
    main()
