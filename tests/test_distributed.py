"""Two CPU processes through torchrun + Accelerate (gloo): data sharded, weights in sync."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import hwaksan

pytest.importorskip("accelerate")


def _two_ranks(out: Path, *args: str) -> list[dict]:
    """Run distributed_worker.py on two gloo ranks; each rank's JSON report."""
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    tests = Path(__file__).parent
    package_root = Path(hwaksan.__file__).parents[1]  # the workers import the hwaksan we test
    path = os.pathsep.join([str(tests), str(package_root)])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    command = [torchrun, "--standalone", "--nproc_per_node", "2",
               str(tests / "distributed_worker.py"), str(out), *args]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_processes_shard_data_and_keep_weights_identical(tmp_path):
    ranks = _two_ranks(tmp_path)
    assert all(r["world_size"] == 2 for r in ranks)
    # sharded: in each step the two ranks' batches are disjoint, and 4 steps x 4 x 2 = one epoch
    for batch0, batch1 in zip(ranks[0]["seen"], ranks[1]["seen"]):
        assert not set(batch0) & set(batch1)
    everything = sum(ranks[0]["seen"] + ranks[1]["seen"], [])
    assert sorted(everything) == list(range(32))
    # in sync: every weight tensor identical after 4 steps of DDP (gradients all-reduced)
    assert ranks[0]["weights"] == ranks[1]["weights"]
    # rank 0 wrote the checkpoint
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_00000004"


def test_two_processes_keep_the_discriminator_identical(tmp_path):
    """The GAN's second optimizer steps a net outside DDP: its gradients must be averaged too."""
    ranks = _two_ranks(tmp_path, "gan")
    assert all(r["world_size"] == 2 for r in ranks)
    disc = [{k: v for k, v in r["weights"].items() if k.startswith("d.")} for r in ranks]
    assert disc[0] and disc[0] == disc[1]
    assert ranks[0]["weights"] == ranks[1]["weights"]
