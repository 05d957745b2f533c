"""The fused CPU kernels (hwaksan/nets/kernels) against the PyTorch paths they replace, forward +
backward at the shapes of the 32 px throughput U-Net (batch 64, fp32, channels-last), and the GEMM
they rest on: oneDNN's brgemm micro-kernel vs MKL's sgemm (`torch.mm`) on attention-sized products.

    python benchmarks/fused_kernels.py [--reps 9]
Writes benchmarks/results/fused_kernels.md and .json. Medians of `--reps`, the two paths
alternating, in one process; the GEMM part builds a tiny extension and runs on one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from report import write_report
from train_throughput import _timed

from hwaksan.nets import kernels
from hwaksan.nets.attention import _SelfAttention
from hwaksan.nets.norm import GroupNorm

CL = torch.channels_last


def alternate(fns: dict, reps: int) -> dict[str, float]:
    """Median ms of each callable, the callables taking turns so drifts hit all alike."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def group_norm_case(shape, add: bool, reps: int) -> dict:
    """silu(GroupNorm(x [+ e])) forward + backward, fused kernel vs the PyTorch path."""
    torch.manual_seed(0)
    B, C = shape[:2]
    norm = GroupNorm(32, C)
    x = torch.randn(shape).contiguous(memory_format=CL).requires_grad_()
    e = torch.randn(B, C, requires_grad=True) if add else None
    dz = torch.randn(shape).contiguous(memory_format=CL)

    def step():
        x.grad = None
        norm.silu(x, add=e).backward(dz)

    def reference():
        x.grad = None
        with _kernels_off():
            norm.silu(x, add=e).backward(dz)

    t = alternate({"fused": step, "pytorch": reference}, reps)
    label = f"GroupNorm{' + add' if add else ''} + SiLU, {tuple(shape)}"
    return dict(op=label, fused_ms=t["fused"], pytorch_ms=t["pytorch"])


def attention_case(B: int, N: int, heads: int, d: int, reps: int) -> dict:
    """Self-attention from a fused qkv, forward + backward: kernel vs SDPA (the fallback path)."""
    torch.manual_seed(0)
    qkv = torch.randn(B, N, 3, heads, d, requires_grad=True)
    dout = torch.randn(B, N, heads, d)

    def kernel():
        qkv.grad = None
        _SelfAttention.apply(qkv).backward(dout)

    def sdpa():
        qkv.grad = None
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
        F.scaled_dot_product_attention(q, k, v).transpose(1, 2).backward(dout)

    t = alternate({"fused": kernel, "pytorch": sdpa}, reps)
    return dict(op=f"self-attention, B={B} N={N} heads={heads} d={d}", fused_ms=t["fused"],
                pytorch_ms=t["pytorch"])  # fmt: skip


class _kernels_off:
    """Within the block, `kernels.group_norm()` answers None, so GroupNorm runs its PyTorch path."""

    def __enter__(self):
        self.saved = kernels.group_norm
        kernels.group_norm = lambda: None

    def __exit__(self, *exc):
        kernels.group_norm = self.saved


GEMM_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/native/CPUBlas.h>
#include <chrono>
// GFLOP/s of C (M x N) = A (M x K) @ B (K x N) through oneDNN's brgemm, best of `reps`
double brgemm_gflops(int64_t M, int64_t N, int64_t K, int64_t reps) {
  auto A = torch::randn({M, K}), B = torch::randn({K, N}), C = torch::empty({M, N});
  double best = 1e30;
  for (int64_t r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i)
      at::native::cpublas::brgemm(M, N, K, K, N, N, false, A.data_ptr<float>(),
                                  B.data_ptr<float>(), C.data_ptr<float>(), false);
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count() / 20);
  }
  at::native::cpublas::brgemm_release(false);
  TORCH_CHECK(torch::allclose(C, torch::mm(A, B), 1e-3, 1e-3), "brgemm result differs from mm");
  return 2.0 * M * N * K / best / 1e9;
}
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("brgemm_gflops", &brgemm_gflops); }
"""


def gemm_rows(reps: int) -> list[dict]:
    """One thread: brgemm vs torch.mm (MKL) on the products of a 256-token, 32-dim head."""
    from torch.utils.cpp_extension import load_inline

    ext = load_inline("hwaksan_bench_brgemm", GEMM_SOURCE, functions=None, extra_cflags=["-O3"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    for M, N, K in [(256, 256, 32), (256, 32, 256), (32, 256, 256)]:
        a, b = torch.randn(M, K), torch.randn(K, N)
        best = min(_timed(lambda a=a, b=b: [a @ b for _ in range(20)]) / 20 for _ in range(reps))
        rows.append(dict(product=f"({M} x {K}) @ ({K} x {N})",
                         brgemm_gflops=ext.brgemm_gflops(M, N, K, reps),
                         mkl_gflops=2 * M * N * K / best / 1e9))  # fmt: skip
    torch.set_num_threads(threads)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    if kernels.group_norm() is None or kernels.attention() is None:
        sys.exit("error: the fused kernels could not be built here (see the warning above)")
    rows = [
        group_norm_case((64, 64, 32, 32), False, args.reps),
        group_norm_case((64, 64, 32, 32), True, args.reps),
        group_norm_case((64, 128, 16, 16), True, args.reps),
        group_norm_case((64, 256, 16, 16), False, args.reps),
        attention_case(64, 256, 4, 32, args.reps),
        attention_case(64, 64, 4, 32, args.reps),
        # long sequences: where the kernel stops winning (attention.KERNEL_MAX_TOKENS)
        attention_case(4, 1024, 4, 32, max(3, args.reps // 3)),
        attention_case(1, 1536, 4, 32, max(3, args.reps // 3)),
        attention_case(2, 2048, 4, 32, max(3, args.reps // 3)),
        attention_case(1, 4096, 4, 32, max(3, args.reps // 3)),
    ]
    gemms = gemm_rows(args.reps)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Fused CPU kernels vs the PyTorch paths they replace (fp32, forward + backward)",
        "",
        f"- {now}; {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; medians of {args.reps}, the two paths alternating",
        "- PyTorch path: native GroupNorm forward + hwaksan's channels-last backward; "
        "`F.scaled_dot_product_attention` (its fp32 flash kernel) on q, k, v views of the qkv",
        "",
        "| op | fused ms | PyTorch ms | speed-up |",
        "|---|---|---|---|",
        *(
            f"| {r['op']} | {r['fused_ms']:.2f} | {r['pytorch_ms']:.2f} | "
            f"{r['pytorch_ms'] / r['fused_ms']:.2f}x |"
            for r in rows
        ),  # fmt: skip
        "",
        "The GEMM under the attention kernel, one thread, best of the runs:",
        "",
        "| product | oneDNN brgemm GFLOP/s | torch.mm (MKL) GFLOP/s |",
        "|---|---|---|",
        *(f"| {g['product']} | {g['brgemm_gflops']:.0f} | {g['mkl_gflops']:.0f} |" for g in gemms),
        "",
        f"Command: `python benchmarks/fused_kernels.py --reps {args.reps}`",
    ]
    write_report("fused_kernels", lines, dict(ops=rows, gemm=gemms, when=now))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
