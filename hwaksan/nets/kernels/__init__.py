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

from hwaksan.nets.kernels import checks

_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp"]  # compile only: no crtfastmath link


def enabled() -> bool:
    """False when the user switched fused kernels off (HWAKSAN_FUSED_KERNELS=0)."""
    return os.environ.get("HWAKSAN_FUSED_KERNELS", "1") != "0"


@cache
def group_norm() -> ModuleType | None:
    """`group_norm.cpp` compiled (forward, backward): GroupNorm + conditioning + SiLU, or None."""
    return _build("group_norm", checks.check_group_norm)


@cache
def attention() -> ModuleType | None:
    """`attention.cpp` compiled (forward, backward): fp32 self-attention on a fused qkv, or None."""
    return _build("attention", checks.check_attention)


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


def _build_key(source: Path) -> str:
    """What a build depends on, hashed into its cache name: the CPU (-march=native), the kernel's
    source, the compile flags, and the torch install it links against (two environments on one
    machine then keep their own builds instead of rebuilding over each other's), and the source's
    path (ninja rebuilds when the command names another file: two clones would take turns)."""
    parts = [_cpu_tag(), source.read_text(), " ".join(_FLAGS), torch.__version__, sys.prefix,
             str(source.resolve())]  # fmt: skip
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
