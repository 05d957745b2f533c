"""Training throughput: hwaksan's U-Net vs diffusers' UNet2DModel at a matched 32 px config.

Same widths (64, 128, 128), two ResBlocks per level, attention at 16x16 with 4 heads of 32, the
same parameter count; one AdamW training step (forward, MSE backward, update) at the same batch,
fp32 and bf16 autocast. Steps of the two nets are interleaved and medians taken, because the
machine is shared. Also: the fraction of the CPU's measured matmul peak each step reaches
(FLOPs from `torch.utils.flop_counter.FlopCounterMode`; peak: the faster of a big `torch.mm`, which
is MKL in fp32, and the same product as a 1x1 convolution, which is oneDNN). `--compile` adds
`torch.compile` of both nets (ours channels-last), so compiled is compared with compiled too.

    python benchmarks/train_throughput.py [--batch 64] [--steps 5] [--compile] [--precisions fp32]
Writes benchmarks/results/train_throughput.md and .json.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from report import write_report
from torch.utils.flop_counter import FlopCounterMode

from hwaksan.nets import UNet, UNetConfig


def build_pair(channels_last: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Ours and diffusers', the same shape: widths (64,128,128), 2 blocks, attention at 16."""
    from diffusers import UNet2DModel

    ours = UNet(
        UNetConfig(
            in_channels=3, resolution=32, channels=(64, 128, 128), layers_per_block=2,
            attention_resolutions=(16,), num_heads=4, use_scale_shift_norm=False,
            channels_last=channels_last,
        )
    )  # fmt: skip
    theirs = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128),
        layers_per_block=2, attention_head_dim=32,  # 128 / 32 = 4 heads, as ours
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    return ours, theirs


def _call(net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    out = net(x, t)
    return out.sample if hasattr(out, "sample") else out


class Stepper:
    """One AdamW training step of a net on a fixed random batch, optionally under bf16 autocast."""

    def __init__(self, net: torch.nn.Module, batch: int, bf16: bool):
        g = torch.Generator().manual_seed(0)
        self.net, self.bf16 = net, bf16
        self.x = torch.randn(batch, 3, 32, 32, generator=g)
        self.t = torch.randint(0, 1000, (batch,), generator=g)
        self.target = torch.randn(batch, 3, 32, 32, generator=g)
        self.opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)

    def loss(self) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = _call(self.net, self.x, self.t)
        return F.mse_loss(out.float(), self.target)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        self.loss().backward()
        self.opt.step()
        return time.perf_counter() - t0

    def flops(self) -> int:
        """FLOPs of forward + backward (the optimizer's elementwise work is not counted)."""
        with FlopCounterMode(display=False) as counter:
            self.loss().backward()
        self.opt.zero_grad(set_to_none=True)
        return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Best-of-`reps` GFLOP/s of an n x n matmul, as `torch.mm` and as a 1x1 convolution.

    The faster of the two is the CPU's practical ceiling for this dtype: fp32 `torch.mm` is MKL,
    which on AMD CPUs runs below what oneDNN (the convolutions' library) reaches.
    """
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    x = a.view(n // 64, 8, 8, n).permute(0, 3, 1, 2)  # (n/64, n, 8, 8) channels-last: n rows
    w = b.t()[:, :, None, None]  # (n, n, 1, 1)
    best = math.inf
    for fn in (lambda: a @ b, lambda: F.conv2d(x, w)):
        fn()
        best = min(best, *(_timed(fn) for _ in range(reps)))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(steppers: dict[str, Stepper], warmup: int, steps: int, peaks: dict[str, list[float]]):
    """Interleave: every round runs one step of each stepper, so load changes hit all alike.

    Each round also samples the matmul peak; the report uses the best sample.
    """
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for i in range(warmup + steps):
        peaks["fp32"].append(matmul_peak(torch.float32, reps=2))
        peaks["bf16"].append(matmul_peak(torch.bfloat16, reps=2))
        for name, step in steppers.items():
            dt = step()
            if i >= warmup:
                times[name].append(dt)
        print(f"round {i + 1}/{warmup + steps}: " + ", ".join(
            f"{k} {v[-1]:.2f}s" for k, v in times.items() if v))  # fmt: skip
    return times


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant (median)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of both nets")
    ap.add_argument("--name", default="train_throughput", help="results/<name>.md and .json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    precisions = args.precisions.split(",")

    load_before = os.getloadavg()
    peaks = {"fp32": [matmul_peak(torch.float32)], "bf16": [matmul_peak(torch.bfloat16)]}
    ours, theirs = build_pair()
    ours_cl, _ = build_pair(channels_last=True)
    ours_cl.load_state_dict(ours.state_dict())
    nets = {"hwaksan": ours, "hwaksan channels-last": ours_cl, "diffusers": theirs}
    steppers = {
        f"{name} {prec}": Stepper(net, args.batch, prec == "bf16")
        for prec in precisions
        for name, net in nets.items()
    }
    compile_s = {}
    if args.compile:  # compiled twins: ours in its fastest layout, theirs as it comes
        for name, net in (("hwaksan channels-last", ours_cl), ("diffusers", theirs)):
            nets[f"{name}+compile"] = twin = torch.compile(copy.deepcopy(net))
            for prec in precisions:
                key = f"{name}+compile {prec}"
                steppers[key] = Stepper(twin, args.batch, prec == "bf16")
                compile_s[key] = steppers[key]()  # the first step compiles
    flops = {
        name: Stepper(net, 2, False).flops() * args.batch / 2
        for name, net in nets.items()
        if "+compile" not in name
    }
    times = run(steppers, args.warmup, args.steps, peaks)
    load_after = os.getloadavg()
    peak = {k: max(v) for k, v in peaks.items()}

    rows = []
    for key, ts in times.items():
        name, prec = key.rsplit(" ", 1)  # "hwaksan channels-last bf16" -> name, "bf16"
        med = statistics.median(ts)
        row = dict(net=name, precision=prec, s_per_step=med, images_per_s=args.batch / med)
        for ref in ("diffusers", "diffusers+compile"):
            theirs_ts = times.get(f"{ref} {prec}")
            if theirs_ts is None:
                continue
            row[f"vs {ref}"] = statistics.median(theirs_ts) / med
            row[f"vs {ref} paired"] = statistics.median(b / a for a, b in zip(ts, theirs_ts))
        row.update(fraction_of_peak=flops[name.split("+")[0]] / med / 1e9 / peak[prec], steps=ts)
        rows.append(row)
    meta = dict(when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), cpu=_cpu_name(),
                logical_cpus=os.cpu_count(), torch=torch.__version__,
                threads=torch.get_num_threads(), load_before=load_before, load_after=load_after,
                batch=args.batch, steps=args.steps, warmup=args.warmup, peak_gflops=peak,
                flops_per_step=flops, compile_s=compile_s)  # fmt: skip
    report(args, rows, meta, nets)


def report(args, rows, meta, nets) -> None:
    params = {k: sum(p.numel() for p in n.parameters()) for k, n in nets.items()}
    lines = [
        "# Training throughput: hwaksan U-Net vs diffusers UNet2DModel",
        "",
        f"- {meta['when']}; {meta['cpu']}, {meta['logical_cpus']} logical CPUs, "
        f"torch {meta['torch']}, {meta['threads']} threads",
        f"- load average (1/5/15 min) before: {'/'.join(f'{v:.2f}' for v in meta['load_before'])}"
        f", after: {'/'.join(f'{v:.2f}' for v in meta['load_after'])} (a shared machine)",
        "- 32x32 RGB, widths (64, 128, 128), 2 ResBlocks per level, attention at 16x16 "
        "(4 heads); params: "
        + ", ".join(f"{k} {v / 1e6:.3f} M" for k, v in params.items() if "compile" not in k),
        f"- one fused-AdamW step at batch {args.batch}; median of {args.steps} interleaved steps, "
        f"after {args.warmup} warm-up; FLOPs per step (fwd + bwd, as the nets are defined): "
        + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in meta["flops_per_step"].items()),
        f"- matmul peak (2048^3 as `torch.mm` and as a oneDNN 1x1 conv, the faster, best sample "
        f"of all rounds): fp32 {meta['peak_gflops']['fp32']:.0f} GFLOP/s, "
        f"bf16 {meta['peak_gflops']['bf16']:.0f} GFLOP/s",
        "- vs diffusers: ratio of median step times; paired: median over rounds of the ratio of "
        "the two nets' steps in the same round",
    ]
    if meta["compile_s"]:
        first = ", ".join(f"{k} {v:.0f} s" for k, v in meta["compile_s"].items())
        lines.append(
            f"- torch.compile (inductor, default mode), first step incl. compiling: {first}"
        )
    compiled = any("+compile" in r["net"] for r in rows)
    extra = " vs diffusers+compile | paired |" if compiled else ""
    lines += [
        "",
        f"| net | precision | s/step | img/s | vs diffusers | paired |{extra} % peak | steps (s) |",
        "|---|---|---|---|---|---|" + ("---|---|" if compiled else "") + "---|---|",
    ]
    for r in rows:
        cells = [r["net"], r["precision"], f"{r['s_per_step']:.2f}", f"{r['images_per_s']:.1f}"]
        refs = ("diffusers", "diffusers+compile") if compiled else ("diffusers",)
        for ref in refs:
            for key in (f"vs {ref}", f"vs {ref} paired"):
                cells.append(f"{r[key]:.2f}x" if key in r else "")
        cells += [f"{r['fraction_of_peak']:.0%}", " ".join(f"{t:.2f}" for t in r["steps"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Command: `python benchmarks/train_throughput.py --batch {args.batch} "
              f"--steps {args.steps} --precisions {args.precisions}"
              f"{' --compile' if args.compile else ''}`"]  # fmt: skip
    write_report(args.name, lines, dict(meta=meta, rows=rows))


if __name__ == "__main__":
    main()
