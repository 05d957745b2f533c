"""`hwaksan train` into a folder that holds a run: an error unless --resume or --overwrite."""

from __future__ import annotations

from click.testing import CliRunner

from hwaksan.cli import main

ARGS = ["train", "--data", "digits", "--resolution", "8", "--steps", "2", "--batch-size", "8",
        "--channels", "16,32", "--attention-resolutions", "4", "--warmup", "1",
        "--sample-steps", "2", "--num-samples", "0", "--checkpoint-every", "1"]  # fmt: skip


def test_a_second_run_into_the_same_folder_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    first = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert first.exit_code == 0, first.output
    log = (out / "log.csv").read_text()
    again = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert again.exit_code == 2 and "already holds a training run" in again.output
    assert again.output.count("\n") == 1 and (out / "log.csv").read_text() == log  # untouched
    (out / "notes.txt").write_text("mine")
    replaced = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert (out / "notes.txt").read_text() == "mine"  # only what a run writes is replaced
    resumed = CliRunner().invoke(main, [*ARGS, "--out", str(out), "--resume", "--steps", "3"])
    assert resumed.exit_code == 0, resumed.output
