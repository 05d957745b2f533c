"""Fused CPU kernels, compiled on first use with `torch.utils.cpp_extension` (20-40 s, then
cached by PyTorch under ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR, one build per CPU,
source, and torch install).

`group_norm()` and `attention()` return the compiled modules, or None when they cannot be had: no
C++ compiler or ninja, a failed build, or HWAKSAN_FUSED_KERNELS=0 in the environment. Callers then
run the reference PyTorch path, which computes the same function; a kernel only saves time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import time
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
    micro-kernels do not support, a wrong result, another process building it for too long)."""
    if not enabled():
        return None
    try:
        from torch.utils.cpp_extension import _get_build_directory, load

        source = Path(__file__).with_name(f"{name}.cpp")
        module = f"hwaksan_{name}_{_build_key(source)}"
        build_dir = Path(_get_build_directory(module, verbose=False))
        with _build_lock(build_dir, name):
            if not (build_dir / f"{module}.so").exists():
                print(f"hwaksan: compiling the fused CPU kernel '{name}' (once per install, "
                      "~20-40 s)", file=sys.stderr, flush=True)  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ops = load(module, [str(source)], extra_cflags=_FLAGS, verbose=False,
                           extra_ldflags=["-fopenmp"], build_directory=str(build_dir))  # fmt: skip
        check(ops)
        return ops
    except Exception as err:  # fall back to the PyTorch path, and say so once
        first = str(err).splitlines()[0] if str(err) else ""
        warnings.warn(f"hwaksan: fused {name} kernel unavailable ({type(err).__name__}: {first}); "
                      "using the PyTorch path", stacklevel=3)  # fmt: skip
        return None


LOCK_WAIT_S = 300.0  # how long to wait for another process's build before using PyTorch ops


@contextlib.contextmanager
def _build_lock(build_dir: Path, name: str):
    """Hold an exclusive OS lock on the build folder while building. The OS drops it when its
    process dies, so a killed build never blocks the next run; while we hold it, PyTorch's own
    `lock` file (which a killed build leaves behind, and which PyTorch waits on forever) is
    stale and removed. Waits at most LOCK_WAIT_S for a live build, saying so once."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): PyTorch's own lock only
        yield
        return
    with open(build_dir / "hwaksan.lock", "w") as handle:
        deadline, said = time.monotonic() + LOCK_WAIT_S, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process has been building it for over "
                                       f"{LOCK_WAIT_S:.0f} s") from None  # fmt: skip
                if not said:
                    print(f"hwaksan: waiting for another process to finish building the fused "
                          f"CPU kernel '{name}'", file=sys.stderr, flush=True)  # fmt: skip
                    said = True
                time.sleep(0.5)
        try:
            (build_dir / "lock").unlink(missing_ok=True)  # a killed build's: stale, as we hold ours
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_group_norm(ops: ModuleType) -> None:
    """One small forward against F.group_norm + F.silu (on its own generator: a check never
    moves the global RNG, so a resumed run draws the same noise as an uninterrupted one)."""
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=g) for shape in [(2, 6, 4), (2, 4), (2, 4)])
    z, _, _ = ops.forward(x, w, b, torch.empty(0), 2, 1e-5, True)
    y = F.group_norm(x.transpose(1, 2), 2, eps=1e-5).transpose(1, 2) * w[:, None] + b[:, None]
    if not torch.allclose(z, F.silu(y), atol=1e-4, rtol=1e-4):
        raise RuntimeError("its result differs from F.group_norm on this machine")


def _check_attention(ops: ModuleType) -> None:
    """One small forward against F.scaled_dot_product_attention (the brgemm call included), on
    its own generator."""
    qkv = torch.randn(2, 5, 3, 2, 4, generator=torch.Generator().manual_seed(0))  # (B, N, 3, h, d)
    out, _ = ops.forward(qkv)
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
    if not torch.allclose(out, F.scaled_dot_product_attention(q, k, v).transpose(1, 2), atol=1e-5):
        raise RuntimeError("its result differs from SDPA on this machine")


def _build_key(source: Path) -> str:
    """What a build depends on, hashed into its cache name: the CPU (-march=native), the kernel's
    source, the compile flags, and the torch install it links against (two environments on one
    machine then keep their own builds instead of rebuilding over each other's)."""
    parts = [_cpu_tag(), source.read_text(), " ".join(_FLAGS), torch.__version__, sys.prefix]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:12]


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
