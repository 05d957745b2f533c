"""Shared click parameter types: every option is checked where it is parsed, in one sentence.

A bad value (NaN, infinity, out of range, a width list with a zero, an output file that is not
an image) fails before any work starts, as click's usage error, which the CLI prints as one
`error: ...` line with exit code 2.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import click

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_SEED = 2**63 - 1


class FiniteFloat(click.ParamType):
    """A finite float in [min, max] (`open_min` / `open_max` exclude that end)."""

    name = "number"

    def __init__(
        self,
        min: float = -math.inf,
        max: float = math.inf,
        open_min: bool = False,
        open_max: bool = False,
    ) -> None:
        self.min, self.max, self.open_min, self.open_max = min, max, open_min, open_max

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low = number <= self.min if self.open_min else number < self.min
        high = number >= self.max if self.open_max else number > self.max
        if low or high:
            self.fail(f"{value!r} is not {self.range_text()}", param, ctx)
        return number

    def range_text(self) -> str:
        parts = []
        if self.min > -math.inf:
            parts.append(f"{'>' if self.open_min else '>='} {self.min:g}")
        if self.max < math.inf:
            parts.append(f"{'<' if self.open_max else '<='} {self.max:g}")
        return " and ".join(parts) or "finite"


class BoundedInt(click.ParamType):
    """An integer in [min, max], both ends included."""

    name = "integer"

    def __init__(self, min: int = 0, max: int = 2**31 - 1, what: str = "") -> None:
        self.min, self.max, self.what = min, max, what

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if not self.min <= number <= self.max:
            why = f" ({self.what})" if self.what else ""
            self.fail(f"{value!r} is not between {self.min} and {self.max:,}{why}", param, ctx)
        return number


def PositiveInt(max: int = 2**31 - 1, what: str = "") -> BoundedInt:  # noqa: N802 (a type)
    """An integer >= 1 (and <= max)."""
    return BoundedInt(1, max, what)


SEED = BoundedInt(0, MAX_SEED)


class IntList(click.ParamType):
    """Comma-separated integers each in [min, max], e.g. `32,64,128`."""

    name = "list"

    def __init__(self, example: str, min: int = 1, max: int = 4096, what: str = "numbers") -> None:
        self.example, self.min, self.max, self.what = example, min, max, what

    def convert(self, value, param, ctx) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(int(c) for c in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} must be {self.what} like {self.example}", param, ctx)
        if any(not self.min <= c <= self.max for c in numbers):
            self.fail(
                f"{value!r}: each number must be between {self.min} and {self.max} "
                f"(like {self.example})",
                param,
                ctx,
            )
        return numbers


class ImageFile(click.ParamType):
    """A path to write an image to: an image suffix, and a folder we can write into."""

    name = "file"

    def convert(self, value, param, ctx) -> str:
        path = Path(value)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            self.fail(f"{value!r} must end in {', '.join(IMAGE_SUFFIXES)}", param, ctx)
        if path.is_dir():
            self.fail(f"{value!r} is a folder, not an image file", param, ctx)
        if path.exists() and not os.access(path, os.W_OK):
            self.fail(f"{value!r} exists and is not writable", param, ctx)
        check_writable_parent(path, self, param, ctx)
        return str(value)


class InputImage(click.ParamType):
    """An image file to read: it exists and PIL opens it; the value is the RGB (or, with
    `mode="L"`, greyscale) PIL image."""

    name = "image"

    def __init__(self, mode: str = "RGB") -> None:
        self.mode = mode

    def convert(self, value, param, ctx):
        from PIL import Image, UnidentifiedImageError

        if not isinstance(value, (str, os.PathLike)):
            return value  # already an image (a default, or click re-converting)
        path = Path(value)
        if not path.is_file():
            self.fail(f"{value!r} is not a file" if path.exists() else f"{value!r} does not exist",
                      param, ctx)  # fmt: skip
        try:
            with Image.open(value) as image:
                return image.convert(self.mode)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            self.fail(f"{value!r} is not an image PIL can read", param, ctx)


class OutputFolder(click.ParamType):
    """A folder to write a run into: not an existing file, and somewhere we can write."""

    name = "folder"

    def convert(self, value, param, ctx) -> str:
        path = Path(value)
        if path.exists() and not path.is_dir():
            self.fail(f"{value!r} is a file, not a folder", param, ctx)
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            self.fail(f"{value!r} is not writable", param, ctx)
        check_writable_parent(path, self, param, ctx)
        return str(value)


def check_writable_parent(path: Path, kind: click.ParamType, param, ctx) -> None:
    """Fail unless the nearest existing folder above `path` is a writable folder."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        kind.fail(f"cannot create {str(path)!r}: {parent} is a file", param, ctx)
    if not os.access(parent, os.W_OK | os.X_OK):
        kind.fail(f"cannot write {str(path)!r}: {parent} is not writable", param, ctx)


class AliasOption(click.Option):
    """An option whose later names are hidden aliases: help shows only the first."""

    def get_help_record(self, ctx: click.Context):
        shown = self.opts[:1]
        opts, self.opts = self.opts, shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def max_minutes_option(default: float | None = None, help: str = "stop (and save) after this long"):
    """`--max-minutes` (alias `--minutes`): a positive, finite training-time limit."""
    return click.option(
        "--max-minutes", "--minutes", "max_minutes", cls=AliasOption,
        type=FiniteFloat(0, open_min=True), default=default, show_default=default is not None,
        help=help,
    )  # fmt: skip


RUN_FILES = (
    "checkpoints",
    "log.csv",
    "loss.png",
    "samples",
    "model",
    "snapshots",
    "lora",
)  # what a run writes


def run_folder_options(default: str):
    """`--out` (the run's folder), `--resume` and `--overwrite`: what every training command takes
    about where its run goes (see `fresh_run_folder`)."""

    def decorate(function):
        for option in reversed([
            click.option("--out", "out_dir", type=OutputFolder(), default=default,
                         show_default=True, help="output folder"),
            click.option("--resume", is_flag=True,
                         help="continue from the last checkpoint in --out"),
            click.option("--overwrite", is_flag=True,
                         help="replace a training run already in --out (without it, an "
                         "existing run is an error)"),
        ]):  # fmt: skip
            function = option(function)
        return function

    return decorate


def fresh_run_folder(out_dir: str, resume: bool, overwrite: bool) -> None:
    """A new run never silently replaces another: a folder that holds a run (checkpoints, log,
    model) is an error unless --resume continues it or --overwrite replaces it, which removes only
    what a run writes."""
    import shutil

    from hwaksan.errors import HwaksanError

    out = Path(out_dir)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if resume or not found:
        return
    if not overwrite:
        raise HwaksanError(
            f"{out} already holds a training run ({', '.join(found)}); continue it with "
            "--resume, write elsewhere with --out, or replace it with --overwrite"
        )
    for name in found:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
