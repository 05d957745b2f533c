"""Bits/dim of a trained digits model on the held-out split, for each reverse variance.

One learned-variance model (trained with the hybrid loss) gives three bounds on the same mean
network: its learned variance (Nichol & Dhariwal 2021) and the two fixed ones of Ho et al. 2020,
with the same x_t draws (common random numbers), so the differences are the variance's doing.

Train, then measure (the 20:16 UTC run: 800 steps, ~9 min on a busy 2-core machine):
    hwaksan train --data digits --steps 800 --prediction-type epsilon --learn-sigma \\
        --sample-every 0 --out runs/digits_sigma
    python benchmarks/nll_digits.py runs/digits_sigma -n 128
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from report import write_report

import hwaksan as hk
from hwaksan.cli.nll import heldout_images
from hwaksan.model_folder import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-of-t", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    pipe = load(args.model)  # a model folder or a training run's folder
    assert pipe.learn_sigma, "this benchmark compares variances of a learned-variance model"
    x0 = heldout_images("digits", pipe.image_shape, args.n)
    channels = pipe.image_shape[0]
    null = (
        {"class_labels": torch.full((args.batch_size,), pipe.num_classes)}
        if pipe.num_classes
        else {}
    )

    def mean_only(x, t, **cond):
        return pipe.unet(x, t, **cond)[:, :channels]

    rows = {}
    for variance_type in ("learned_range", "fixed_large", "fixed_small"):
        model = pipe.unet if variance_type == "learned_range" else mean_only
        generator = torch.Generator().manual_seed(0)  # the same x_t for every variance
        parts = []
        for batch in x0.split(args.batch_size):
            cond = {k: v[: len(batch)] for k, v in null.items()}
            parts.append(
                hk.nll_bits_per_dim(
                    model,
                    batch,
                    pipe.schedule,
                    prediction_type=pipe.prediction_type,
                    variance_type=variance_type,
                    cond=cond,
                    batch_of_t=args.batch_of_t,
                    generator=generator,
                    progress=True,
                )  # fmt: skip
            )
        bpd = torch.cat([p["bpd"] for p in parts])
        rows[variance_type] = {
            "bpd": float(bpd.mean()),
            "bpd_se": float(bpd.std() / math.sqrt(len(bpd))),
            "decoder_bpd": float(torch.cat([p["decoder_bpd"] for p in parts]).mean()),
            "prior_bpd": float(torch.cat([p["prior_bpd"] for p in parts]).mean()),
        }
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"# {when}; {args.model}: {pipe.data}",
        f"# {len(x0)} held-out digits, 8-bit, T = {len(pipe.schedule)}"
        + (", unconditional (the null class)" if pipe.num_classes else ""),
        "| reverse variance | bits/dim | decoder L_0 | prior L_T |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        bpd = f"{r['bpd']:.3f} +- {r['bpd_se']:.3f}"
        lines.append(f"| {name} | {bpd} | {r['decoder_bpd']:.3f} | {r['prior_bpd']:.1e} |")
    lines.append(f"# {time.time() - start:.0f} s")
    write_report("nll_digits", lines, rows)


if __name__ == "__main__":
    main()
