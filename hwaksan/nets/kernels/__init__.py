"""Fused CPU kernels, compiled on first use with `torch.utils.cpp_extension` (about 20 s, then
cached by PyTorch under ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR).

`group_norm()` and `attention()` return the compiled modules, or None when they cannot be had: no
C++ compiler or ninja, a failed build, or HWAKSAN_FUSED_KERNELS=0 in the environment. Callers then
run the reference PyTorch path, which computes the same function; a kernel only saves time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]  # compile only: no crtfastmath link


def enabled() -> bool:
    """False when the user switched fused kernels off (HWAKSAN_FUSED_KERNELS=0)."""
    return os.environ.get("HWAKSAN_FUSED_KERNELS", "1") != "0"


@cache
def group_norm() -> ModuleType | None:
    """`group_norm.cpp` compiled (forward, backward): GroupNorm + conditioning + SiLU, or None."""
    return _build("group_norm", _check_group_norm)


@cache
def attention() -> ModuleType | None:
    """`attention.cpp` compiled (forward, backward): fp32 self-attention on a fused qkv, or None."""
    return _build("attention", _check_attention)


def _build(name: str, check: Callable[[ModuleType], None]) -> ModuleType | None:
    """Compile (or load from PyTorch's cache) kernels/<name>.cpp and run `check` on it once; None,
    with one warning, if either fails (no compiler or ninja, a failed build, a CPU the kernel's
    micro-kernels do not support, a wrong result)."""
    if not enabled():
        return None
    try:
        from torch.utils.cpp_extension import load

        source = Path(__file__).with_name(f"{name}.cpp")
        module = f"hwaksan_{name}_{_cpu_tag()}"
        if not _built(module):
            print(f"hwaksan: compiling the fused CPU kernel '{name}' (first use only, ~20 s)",
                  file=sys.stderr, flush=True)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ops = load(module, [str(source)], extra_cflags=_FLAGS, extra_ldflags=["-fopenmp"],
                       verbose=False)  # fmt: skip
        check(ops)
        return ops
    except Exception as err:  # fall back to the PyTorch path, and say so once
        first = str(err).splitlines()[0] if str(err) else ""
        warnings.warn(f"hwaksan: fused {name} kernel unavailable ({type(err).__name__}: {first}); "
                      "using the PyTorch path", stacklevel=3)  # fmt: skip
        return None


def _check_group_norm(ops: ModuleType) -> None:
    """One small forward against F.group_norm + F.silu."""
    x, w, b = torch.randn(2, 6, 4), torch.randn(2, 4), torch.randn(2, 4)  # (B, N, C), (B, C)
    z, _, _ = ops.forward(x, w, b, torch.empty(0), 2, 1e-5, True)
    y = F.group_norm(x.transpose(1, 2), 2, eps=1e-5).transpose(1, 2) * w[:, None] + b[:, None]
    if not torch.allclose(z, F.silu(y), atol=1e-4, rtol=1e-4):
        raise RuntimeError("its result differs from F.group_norm on this machine")


def _check_attention(ops: ModuleType) -> None:
    """One small forward against F.scaled_dot_product_attention (the brgemm call included)."""
    qkv = torch.randn(2, 5, 3, 2, 4)  # (B, N, 3, heads, d)
    out, _ = ops.forward(qkv)
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
    if not torch.allclose(out, F.scaled_dot_product_attention(q, k, v).transpose(1, 2), atol=1e-5):
        raise RuntimeError("its result differs from SDPA on this machine")


def _built(module: str) -> bool:
    """Whether PyTorch's extension cache already holds this module (then loading is instant)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return (Path(_get_build_directory(module, verbose=False)) / f"{module}.so").exists()
    except Exception:  # a private helper: if it moves, only the message is lost
        return False


def _cpu_tag() -> str:
    """-march=native builds for this CPU: a cache shared between machines must not mix them."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    return hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:8]
