"""Fuzzed command lines: every bad value of every option of every subcommand is one `error:` line
and exit code 2, before any work starts (training, sampling and scoring are replaced by a tripwire).

The table is built from the commands themselves (each option's checked type says which values
are out of its range), plus the cases a first-run probe found (issue 15).
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hwaksan.cli import _COMMANDS, main
from hwaksan.cli.options import (
    BoundedInt,
    FiniteFloat,
    ImageFile,
    InputImage,
    IntList,
    OutputFolder,
)

A_PNG = str(Path(__file__).resolve().parent.parent / "docs" / "demo_samples_ddim_50.png")

# a subcommand -> the arguments it needs besides the fuzzed option
ARGUMENTS = {"sample": ["shapes"], "nll": ["shapes"], "eval": ["somewhere"],
             "generate": ["a red circle"], "export-diffusers": ["shapes", "out"],
             "distill": ["consistency"], "upscale": [A_PNG]}  # fmt: skip
# (argv, a fragment the one error line must hold): the probe's cases, by name
ISSUE_CASES = [
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--lr", "nan"], "finite"),
    (["sample", "shapes", "--eta", "nan"], "--eta"),
    (["generate", "a red circle", "--guidance-scale", "nan"], "--guidance-scale"),
    (["generate", "a red circle", "--guidance-scale", "inf"], "finite"),
    (["sample", "shapes", "--guidance-scale", "inf"], "finite"),
    (["train", "--ema-decay", "2"], "--ema-decay"),
    (["sample", "shapes", "--out", "x"], ".png"),
    (["toy", "--out", "x"], ".png"),
    (["toy", "-n", "99999999"], "-n"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["train", "--channels", "0,0"], "--channels"),
    (["demo", "-n", "0"], "-n"),
    (["sample", "shapes", "--out", "/etc/passwd"], "--out"),
    (["train", "--out", "/etc/passwd"], "not a folder"),
    (["train", "--steps", "-5"], "--steps"),
    (["train", "--steps", "0"], "--steps"),
    (["sample", "shapes_cond", "--class-label", "42"], "0..20"),
    (["sample", "digits", "--class-label", "10"], "0..9"),
    (["sample", "shapes", "--class-label", "1"], "unconditional"),
    (["sample", "shapes", "--steps", "5000"], "1000 timesteps"),
    (["generate", ""], "empty prompt"),
    (["generate", "   "], "empty prompt"),
    (["generate", "a red circle", "", "-n", "1"], "empty prompt"),
    (["generate", "a red circle", "--model", "shapes"], "not a text-to-image model"),
    (["generate", "a red circle", "--relation", "red circle", "near", "x"], "REL must be"),
    (["generate", "a red circle", "-n", "200", "x", "y", "z", "w", "v", "u"], "images a grid"),
    (["sample", "nowhere"], "no model named"),
    (["sample", "shapes", "--classifier-scale", "2"], "--classifier"),
    (["eval", "/nonexistent/folder"], "does not exist"),
    (["eval", "x", "--min-objects", "3", "--max-objects", "1"], "--min-objects"),
    (["train", "--minutes", "nan"], "--minutes"),
    (["train", "--max-minutes", "-1"], "--max-minutes"),
    (["serve", "--model", "nowhere"], "no model named"),
    (["serve", "--model", "digits_classifier_noisy"], "noise-aware classifier"),
    (["serve", "--host", ""], "not an address"),
    (["nosuchcommand"], "No such command"),
    (["export-diffusers", "shapes", "/etc/passwd"], "not a folder"),
    (["export-diffusers", "nowhere", "out"], "no model named"),
    (["export-diffusers", "shapes_t2i", "out"], "cross-attention"),
    (["export-diffusers", "digits", "out"], "one head width"),
    (["export-diffusers", "shapes_ldm", "out"], "--decoder-only"),
    (["export-diffusers", "shapes"], "Missing argument 'OUT'"),
    (["generate", "a red circle", "--controlnet", "somewhere"], "go together"),
    (["train-controlnet", "--control", "depth"], "--control"),
    (["train-controlnet", "--cond-drop", "1.5"], "--cond-drop"),
    (["generate", "a red circle", "--strength", "0.5"], "needs --image"),
    (["generate", "a red circle", "--image", A_PNG, "--jump-length", "2"], "need --mask"),
    (["generate", "a red circle", "--image", A_PNG, "--mask", A_PNG, "--invert"], "img2img"),
    (["upscale", "/etc/passwd"], "not an image"),
    (["upscale", A_PNG, "--model", "shapes"], "not a super-resolution model"),
]


def _bad_values(option: click.Option) -> list[str]:
    """Values outside what `option` takes, from its checked type."""
    kind = option.type
    if isinstance(kind, BoundedInt):
        return [str(kind.min - 1), str(kind.max + 1), "x", "1.5", "nan", "1e3", "99" * 20]
    if isinstance(kind, FiniteFloat):
        bad = ["nan", "inf", "-inf", "x", "1e400", ""]
        bad += [str(kind.min - 1)] if kind.min > -1e300 else []
        bad += [str(kind.max * 2 + 1)] if kind.max < 1e300 else []
        return bad + ([f"{kind.min:g}"] if kind.open_min else [])
    if isinstance(kind, IntList):
        return ["0,0", "a,b", "", "-1", "99999", "32,,64", "1.5"]
    if isinstance(kind, ImageFile):
        return ["x", "/etc/passwd", "/etc", "grid.txt", "/etc/passwd/grid.png"]
    if isinstance(kind, InputImage):
        return ["/nonexistent/in.png", "/etc", "/etc/passwd"]
    if isinstance(kind, OutputFolder):
        return ["/etc/passwd", "/etc/passwd/run"]
    if isinstance(kind, click.Choice):
        return ["nope", ""]
    return []


def _commands() -> dict[str, click.Command]:
    return {name: main.get_command(click.Context(main), name) for _, name in _COMMANDS}


def _table() -> list[tuple[list[str], str]]:
    """Every (command line, fragment) case: each option's bad values, a missing value, an
    unknown option, per subcommand; then the issue's cases."""
    cases = []
    for name, command in _commands().items():
        args = ARGUMENTS.get(name, [])
        for option in command.params:
            if not isinstance(option, click.Option) or option.is_flag:
                continue
            flag = option.opts[0]
            cases += [([name, *args, flag, bad], flag) for bad in _bad_values(option)]
            if option.nargs == 1:
                cases.append(([name, *args, flag], flag))  # the value is missing
        cases.append(([name, *args, "--no-such-option"], "--no-such-option"))
    return cases + ISSUE_CASES


TABLE = _table()


@pytest.fixture(autouse=True)
def tripwire(monkeypatch):
    """Any training, sampling or scoring a case reaches fails the test: bad input must stop
    before the work starts."""

    def started(*args, **kwargs):
        raise AssertionError("work started on a bad command line")

    for target in [
        "hwaksan.cli.train.run_diffusion", "hwaksan.runs.diffusion.run_diffusion",
        "hwaksan.cli.train_autoencoder.run_autoencoder", "hwaksan.train.classifier.run_classifier",
        "hwaksan.train.clip.run_clip", "hwaksan.pipeline.Pipeline.generate",
        "hwaksan.runs.ip_adapter.run_ip_adapter",
        "hwaksan.cli.toy.run_samplers", "hwaksan.eval.report.evaluate",
        "hwaksan.diffusion.likelihood.nll_bits_per_dim", "hwaksan.interop.export._write_whole",
        "hwaksan.serve.launch",
        "hwaksan.runs.controlnet.run_controlnet",
        "hwaksan.runs.distill.run_distill",
        "hwaksan.runs.lora.run_lora",
    ]:  # fmt: skip
        monkeypatch.setattr(target, started)
    monkeypatch.setenv("HWAKSAN_FUSED_KERNELS", "0")


def test_table_covers_every_subcommand_and_is_big_enough():
    assert len(TABLE) >= 300
    assert {argv[0] for argv, _ in TABLE} >= set(_commands())


def test_every_number_option_has_a_range():
    """A bare int or float option would let -5, NaN or 1e400 through to the code."""
    for name, command in _commands().items():
        for option in command.params:
            assert option.type not in (click.INT, click.FLOAT), f"{name} {option.opts[0]}"


@pytest.mark.parametrize("argv, fragment", TABLE, ids=[" ".join(a)[:60] for a, _ in TABLE])
def test_bad_command_line_is_one_error_line(argv, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, argv)
    assert isinstance(result.exception, SystemExit), result.exception  # never a traceback
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert result.stdout == "", result.stdout  # nothing began
