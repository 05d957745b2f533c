"""The `hwaksan` command. Each subcommand lives in its own module of this package."""

from __future__ import annotations

import importlib
import sys

import click

from hwaksan.errors import HwaksanError

# (module, command name) — a module defines a click command called `command`.
_COMMANDS: list[tuple[str, str]] = [
    ("hwaksan.cli.toy", "toy"),
    ("hwaksan.cli.train", "train"),
    ("hwaksan.cli.sample", "sample"),
    ("hwaksan.cli.demo", "demo"),
    ("hwaksan.cli.eval", "eval"),
    ("hwaksan.cli.nll", "nll"),
    ("hwaksan.cli.generate", "generate"),
    ("hwaksan.cli.train_clip", "train-clip"),
    ("hwaksan.cli.train_classifier", "train-classifier"),
    ("hwaksan.cli.train_autoencoder", "train-autoencoder"),
]


class _Group(click.Group):
    """Loads subcommands lazily (fast `--help`) and turns user errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for _, name in _COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        for module, command_name in _COMMANDS:
            if command_name == name:
                return importlib.import_module(module).command
        return None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HwaksanError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="hwaksan")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads [default: the idle cores]")  # fmt: skip
def main(threads: int | None) -> None:
    """hwaksan (확산): train, sample and measure diffusion models on a laptop CPU."""
    from hwaksan.runtime_threads import set_threads

    set_threads(threads)  # the idle cores: two threads on a busy 2-core machine ran 5x slower


if __name__ == "__main__":
    main()
