"""How well the autoencoders reconstruct held-out 64 px shapes-world images (README numbers).

For each autoencoder: PSNR of 8-bit reconstructions, Frechet distance of reconstructions vs the
originals on the shapes feature net (beside the distance between two independent sets of
originals: the floor at this n), the detector's agreement (detect(recon) == detect(original), and
== the scene's ground truth), the latents' std (1/std is the latent scale LDM would use), encode
+ decode time, and for VQ the codebook's perplexity and the fraction of codes in use.

    python benchmarks/autoencoders.py [--models autoencoder_kl autoencoder_vq] [--n 1000]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone

import torch
from report import write_report
from tqdm import tqdm

from hwaksan.data import shapes
from hwaksan.eval.frechet import frechet_distance
from hwaksan.nets.autoencoder import VQModel, load_autoencoder

HELDOUT_SEED = 1_000_003  # training renders use seed 0


def objects_key(objects) -> list[tuple]:
    """What the detector claims about a scene, order-free: (shape, color, size, position)."""
    return sorted((o.shape, o.color, o.size, o.position) for o in objects)


@torch.no_grad()
def reconstruct(model, images: torch.Tensor, batch: int = 100):
    """(reconstructions, latents, codes or None), in batches, reconstructions clamped to [-1, 1]."""
    recons, latents, codes = [], [], []
    for x in tqdm(images.split(batch), desc="reconstruct", leave=False):
        z = model.encode_latents(x)
        latents.append(z)
        if isinstance(model, VQModel):
            codes.append(model.quantize(z).indices.flatten())
        recons.append(model.decode(z).clamp(-1, 1))
    return torch.cat(recons), torch.cat(latents), torch.cat(codes) if codes else None


def to_8bit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the values an 8-bit PNG stores, back in [0, 1]."""
    return ((images + 1) * 127.5).round().clamp(0, 255) / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of 8-bit versions of a and b (peak 1)."""
    mse = (to_8bit(a) - to_8bit(b)).square().mean((1, 2, 3)).clamp(min=1e-10)
    return 10 * torch.log10(1 / mse)


def detector_agreement(originals, recons, scenes) -> dict:
    """Fractions of images whose reconstruction the detector reads as the original / the truth."""
    same = truth = orig_truth = 0
    for x, r, scene in tqdm(list(zip(originals, recons, scenes)), desc="detect", leave=False):
        got, want = objects_key(shapes.detect(r)), objects_key(shapes.detect(x))
        gt = objects_key(scene.objects)
        same += got == want
        truth += got == gt
        orig_truth += want == gt
    n = len(scenes)
    return dict(agree_with_original=same / n, agree_with_truth=truth / n,
                originals_agree_with_truth=orig_truth / n)  # fmt: skip


def codebook_usage(codes: torch.Tensor, num_embeddings: int) -> dict:
    counts = torch.bincount(codes, minlength=num_embeddings).double()
    p = counts / counts.sum()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return dict(perplexity=round(perplexity, 1), codes_used=int((counts > 0).sum()),
                fraction_used=round(float((counts > 0).double().mean()), 3),
                codebook_size=num_embeddings)  # fmt: skip


def measure(name: str, images, scenes, reference) -> dict:
    model = load_autoencoder(name)
    start = time.perf_counter()
    recons, latents, codes = reconstruct(model, images)
    seconds = time.perf_counter() - start
    row = dict(model=name, kind=type(model).__name__, f=model.downsample_factor,
               latent_shape=list(model.latent_shape),
               params=sum(p.numel() for p in model.parameters()),
               trained_steps=_steps(name), psnr_db=round(float(psnr(images, recons).mean()), 2),
               frechet_recon_vs_original=round(frechet_distance(recons, images), 3),
               frechet_floor_two_original_sets=reference,
               latent_std=round(float(latents.std()), 4),
               ms_per_image_encode_decode=round(1000 * seconds / len(images), 2))  # fmt: skip
    row.update(detector_agreement(images, recons, scenes))
    if codes is not None:
        row.update(codebook_usage(codes, model.quantize.num_embeddings))
    return row


def _steps(name: str):
    import json

    from hwaksan.nets.autoencoder.io import resolve_autoencoder

    config = json.loads((resolve_autoencoder(name) / "config.json").read_text())
    return config.get("data", {}).get("steps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["autoencoder_kl", "autoencoder_vq"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--out", default="autoencoders", help="results/<out>.md and .json")
    args = p.parse_args()
    torch.manual_seed(0)
    config = shapes.ShapesConfig(resolution=64)  # the base world: 3 shapes, 1-3 objects, black
    images, scenes = shapes.render_batch(args.n, seed=HELDOUT_SEED, config=config)
    other, _ = shapes.render_batch(args.n, seed=HELDOUT_SEED + 1, config=config)
    reference = round(frechet_distance(other, images), 3)
    rows = [measure(name, images, scenes, reference) for name in args.models]
    when = datetime.now(timezone.utc).isoformat(timespec="minutes")
    lines = [
        f"# Autoencoders on held-out 64 px shapes ({args.n} images, base world, 1-3 objects)",
        "",
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{when}. `python benchmarks/autoencoders.py --n {args.n}`",
        "",
        "| model | f, latent | params | steps | PSNR dB | FD recon vs orig (floor) "
        "| detector: recon = orig | recon = truth | latent std | codebook |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        book = (f"perplexity {r['perplexity']}, {r['codes_used']}/{r['codebook_size']} used"
                if "perplexity" in r else "-")  # fmt: skip
        lines.append(
            f"| {r['model']} ({r['kind']}) | {r['f']}, {'x'.join(map(str, r['latent_shape']))} "
            f"| {r['params'] / 1e6:.2f} M | {r['trained_steps']} | {r['psnr_db']} "
            f"| {r['frechet_recon_vs_original']} ({reference}) "
            f"| {100 * r['agree_with_original']:.1f}% | {100 * r['agree_with_truth']:.1f}% "
            f"| {r['latent_std']} | {book} |"
        )
    lines += ["", f"Detector on the originals vs the truth: "
              f"{100 * rows[0]['originals_agree_with_truth']:.1f}%."]  # fmt: skip
    write_report(args.out, lines, dict(n=args.n, date=when, rows=rows))


if __name__ == "__main__":
    main()
