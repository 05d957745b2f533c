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
    ("hwaksan.cli.export_diffusers", "export-diffusers"),
    ("hwaksan.cli.serve", "serve"),
    ("hwaksan.cli.upscale", "upscale"),
    ("hwaksan.cli.train_clip", "train-clip"),
    ("hwaksan.cli.train_classifier", "train-classifier"),
    ("hwaksan.cli.train_autoencoder", "train-autoencoder"),
    ("hwaksan.cli.train_controlnet", "train-controlnet"),
    ("hwaksan.cli.train_ip_adapter", "train-ip-adapter"),
    ("hwaksan.cli.distill", "distill"),
    ("hwaksan.cli.train_lora", "train-lora"),
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence, whole (click's default cuts it with "...")."""
        rows = [(name, self.get_command(ctx, name).get_short_help_str(limit=1000))
                for name in self.list_commands(ctx)]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Run; every user error (a bad option or a HwaksanError) is one `error:` line, exit 2."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as e:
            hint = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) else ""
            _fail(e.format_message() + hint)
        except HwaksanError as e:
            _fail(str(e))
        except (KeyboardInterrupt, click.Abort):
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str) -> None:
    """Print `error: message` on one line and exit with status 2."""
    click.echo("error: " + " ".join(message.split()), err=True)
    sys.exit(2)


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
