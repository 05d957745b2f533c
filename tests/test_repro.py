"""One seed fixes a run bit for bit, and SIGKILLs at random moments (one inside a checkpoint
write) followed by resumes end bit-identical to an uninterrupted run, with the fused kernels on."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from repro_run import STEPS, tiny_run
from safetensors.torch import load_file

from hwaksan.nets import kernels

ROOT = Path(__file__).resolve().parent.parent


def _run_state(out: Path) -> dict:
    """Everything a run leaves that must be reproducible: the last checkpoint's tensor groups
    (model, EMA, optimizer, RNG) and state, the model folder's weights, and the log without its
    wall-clock column."""
    last = out / "checkpoints" / f"step_{STEPS:08d}"
    found = {f"ckpt/{p.stem}": load_file(str(p)) for p in sorted(last.glob("*.safetensors"))}
    found.update({f"model/{p.stem}": load_file(str(p)) for p in (out / "model").glob("*.st*")})
    state = json.loads((last / "state.json").read_text())
    state["train_config"].pop("out_dir")
    with open(out / "log.csv", newline="") as f:
        log = [{k: v for k, v in row.items() if k != "images_per_s"} for row in csv.DictReader(f)]
    return {"tensors": found, "state": state, "log": log}


def _differences(a: dict, b: dict) -> list[str]:
    diffs = [k for k in ("state", "log") if a[k] != b[k]]
    assert a["tensors"].keys() == b["tensors"].keys()
    for group, tensors in a["tensors"].items():
        other = b["tensors"][group]
        assert tensors.keys() == other.keys(), group
        diffs += [f"{group}:{k}" for k, v in tensors.items() if not torch.equal(v, other[k])]
    return diffs


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("reference")
    tiny_run(out)
    return _run_state(out)


def test_two_fresh_runs_with_one_seed_are_bit_identical(tmp_path, reference):
    tiny_run(tmp_path / "again")  # a second run in the same process: the global RNG has moved
    assert _differences(reference, _run_state(tmp_path / "again")) == []
    tiny_run(tmp_path / "other", seed=1)  # and the comparison can fail
    assert len(_differences(reference, _run_state(tmp_path / "other"))) > 100


def _script(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "repro_run.py"), str(out), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _kill_at_random(proc: subprocess.Popen, out: Path, rng: random.Random) -> None:
    """SIGKILL `proc` a random 0-1.5 s after it first has a checkpoint (or when it ends)."""
    latest = out / "checkpoints" / "latest"
    while proc.poll() is None and not latest.exists():
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.skipif(kernels.group_norm() is None, reason="no C++ compiler for the fused kernels")
def test_sigkills_then_resumes_end_bit_identical(tmp_path, reference):
    out, rng = tmp_path / "killed", random.Random(0)
    # A kill certain to land inside a checkpoint write: half-way through its third file.
    killed = _script(out, "--kill-in-write", "3")
    assert killed.wait(timeout=300) == -signal.SIGKILL
    assert not (out / "checkpoints" / "step_00000002").exists()  # never half a checkpoint
    for _ in range(2):  # kills at random moments, in a step or in a checkpoint write
        _kill_at_random(_script(out), out, rng)
    finish = _script(out)
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert _differences(reference, _run_state(out)) == []
