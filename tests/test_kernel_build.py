"""A fused-kernel build that is killed half-way never blocks the next run: it finishes, with one
message, instead of waiting forever on the lock file the killed build left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hwaksan.nets import kernels

LOAD = "from hwaksan.nets import kernels; print('ok' if kernels.attention() else 'none')"


@pytest.mark.skipif(not kernels.enabled(), reason="fused kernels switched off")
def test_a_build_killed_mid_compile_does_not_block_the_next_run(tmp_path):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-c", LOAD], env=env, stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/lock")):  # PyTorch's lock: the compile has started
        assert time.monotonic() < deadline and first.poll() is None, "the build never started"
        time.sleep(0.2)
    time.sleep(1.0)  # mid-compile
    os.killpg(first.pid, signal.SIGKILL)  # the process and its compiler, as a closed terminal
    first.wait()
    assert list(tmp_path.glob("*/lock")), "the killed build should leave its stale lock behind"
    second = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert second.stdout.strip() == "ok", second.stderr
    assert "compiling the fused CPU kernel 'attention'" in second.stderr
