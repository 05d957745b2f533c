"""The thread policy: idle cores by default, OMP_NUM_THREADS or `--threads N` when given."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from hwaksan.cli import main
from hwaksan.runtime_threads import default_threads


@pytest.mark.parametrize(
    "cores, load, threads",
    [(2, 0.1, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 0.6, 1), (2, 3.5, 1), (8, 1.2, 7), (1, 0.0, 1)],
)
def test_default_threads_are_the_idle_cores(cores, load, threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads(cores, load) == threads


def test_omp_num_threads_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads(2, 5.0) == 3


def test_cli_threads_sets_torch_threads_and_rejects_zero():
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, ["--threads", "2", "eval", "--help"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    result = CliRunner().invoke(main, ["--threads", "0", "eval", "--help"])
    assert result.exit_code == 2 and "--threads" in result.output


def test_a_process_started_just_now_is_seen(monkeypatch):
    """The 1-minute load average lags; the runnable count sees a busy loop within a second."""
    import subprocess
    import sys
    import time

    from hwaksan.runtime_threads import runnable_others

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert runnable_others() >= 1
        assert default_threads(2) == 1
    finally:
        hog.kill()
        hog.wait()
