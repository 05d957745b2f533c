"""How tight is the variational bound? nll_bits_per_dim against the true NLL, for data whose
reverse process is known in closed form.

1. Gaussian data x0 ~ N(mu, diag(s^2)): the exact reverse step is Gaussian, so with its true
   variance the bound equals -log q(x0) at every T; fixed variances leave a gap (estimated with
   nll_bits_per_dim, and its expectation computed analytically).
2. A two-component Gaussian mixture per dimension: the reverse step is not Gaussian, and the best
   Gaussian (moment-matched mean and variance, Bao et al. 2022's analytic variance made exact)
   leaves a gap that closes as the steps get finer.

Run: python benchmarks/nll_gaussian.py  (30 s of CPU on one core, 3 min on a busy machine; writes
benchmarks/results/nll_gaussian.md, .json and .png)
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path

import torch
from report import RESULTS, write_report

import hwaksan as hk
from hwaksan.diffusion.exact import GaussianDenoiser, MixtureDenoiser

D, B = 2048, 32
T_VALUES = (10, 30, 100, 300, 1000)


def _estimate(model, x0, schedule, variance_type, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = hk.nll_bits_per_dim(
        model,
        x0,
        schedule,
        variance_type=variance_type,
        discrete=False,
        batch_of_t=100,
        generator=g,
    )
    return out


def _mean_se(x: torch.Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.std() / math.sqrt(len(x)))


def gaussian_rows() -> list[dict]:
    mu = torch.linspace(-0.5, 0.5, D, dtype=torch.float64)
    s = torch.linspace(0.05, 0.5, D, dtype=torch.float64)
    x0 = mu + s * torch.randn(B, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows = []
    for T in T_VALUES:
        schedule = hk.NoiseSchedule.cosine(T)
        fixed = {
            "fixed_small": schedule.posterior_log_variance_clipped,
            "fixed_large": torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]]).log(),
            "learned_log": None,
        }
        for variance_type, log_variance in fixed.items():
            model = GaussianDenoiser(
                mu, s, schedule, learned_variance=variance_type == "learned_log"
            )
            out = _estimate(model, x0, schedule, variance_type)
            gap, se = _mean_se(out["bpd"] - model.nll_bits_per_dim(x0))
            analytic = model.expected_bound(log_variance)
            rows.append(
                dict(data="gaussian", T=T, variance_type=variance_type, gap=gap, gap_se=se,
                     analytic_gap=float(analytic["bound"] - analytic["entropy"]),
                     analytic_decoder=float(analytic["terms"][0]),
                     analytic_kl_sum=float(analytic["terms"][1:].sum()))
            )  # fmt: skip
    return rows


def mixture_rows() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    sign = torch.randint(0, 2, (B, D), generator=g).double() * 2 - 1
    x0 = 0.5 * sign + 0.1 * torch.randn(B, D, generator=g, dtype=torch.float64)
    rows = []
    for T in T_VALUES:
        schedule = hk.NoiseSchedule.cosine(T)
        model = MixtureDenoiser(torch.tensor([-0.5, 0.5]), 0.1, schedule, learned_variance=True)
        out = _estimate(model, x0, schedule, "learned_log")
        gap, se = _mean_se(out["bpd"] - model.nll_bits_per_dim(x0))
        rows.append(dict(data="mixture", T=T, variance_type="moment-matched", gap=gap, gap_se=se))
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("fixed_small", "fixed_large", "learned_log", "moment-matched"):
        sel = [r for r in rows if r["variance_type"] == key]
        label = {
            "learned_log": "gaussian, true variance",
            "moment-matched": "mixture, best Gaussian step",
        }
        T, gap, err = ([r[k] for r in sel] for k in ("T", "gap", "gap_se"))
        label = label.get(key, f"gaussian, {key}")
        ax.errorbar(T, gap, yerr=[2 * e for e in err], marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("T (cosine schedule)")
    ax.set_ylabel("bound - true NLL (bits/dim)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    torch.set_num_threads(1)
    start = time.time()
    rows = gaussian_rows() + mixture_rows()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"# {when}, {platform.machine()}, 1 thread, torch {torch.__version__}",
        f"# D={D} dims x B={B} examples, one x_t per t; gap = mean over examples, +- 1 s.e.",
        "| data | T | variance | bound - NLL (bits/dim) | analytic expectation |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        analytic = f"{r['analytic_gap']:.4f}" if "analytic_gap" in r else "-"
        gap = f"{r['gap']:+.4f} +- {r['gap_se']:.4f}"
        lines.append(f"| {r['data']} | {r['T']} | {r['variance_type']} | {gap} | {analytic} |")
    lines.append(f"# {time.time() - start:.0f} s")
    write_report("nll_gaussian", lines, rows)
    plot(rows, RESULTS / "nll_gaussian.png")
    print(f"# wrote {RESULTS}/nll_gaussian.md, .json and .png")


if __name__ == "__main__":
    main()
