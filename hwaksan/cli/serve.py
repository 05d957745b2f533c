"""`hwaksan serve`: a local web page to generate from any shipped or local model."""

from __future__ import annotations

import click

from hwaksan.cli.options import BoundedInt
from hwaksan.errors import HwaksanError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command("serve", short_help="A local web page to generate images from any model.")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME|FOLDER",
    help="a model to offer first (repeatable); every shipped model is offered too",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to bind; 0.0.0.0 opens the page to other machines",
)
@click.option("--port", type=BoundedInt(1, 65535), default=7860, show_default=True)
@click.option(
    "--share",
    is_flag=True,
    default=False,
    help="also a public link through Gradio's share server (off: this machine only)",
)
def command(models, host, port, share) -> None:  # fmt: skip
    """Serve a page (Gradio, `pip install 'hwaksan[serve]'`) at http://HOST:PORT: choose a
    model, write a prompt or pick a class, set sampler, steps, guidance, seed and count; a
    progress bar follows the sampler and the images land in a gallery with download. One
    generation at a time per model; others wait their turn.

    hwaksan serve --model shapes_t2i
    """
    import hwaksan.serve
    from hwaksan.serve.models import Models

    if not host.strip() or any(c.isspace() for c in host):
        raise HwaksanError(f"--host {host!r} is not an address, e.g. 127.0.0.1")
    offered = Models(models)
    for name in models:
        offered.pipeline(name)  # a bad name or folder is one line now, not on the page
    if host not in LOOPBACK:
        click.echo(f"note: --host {host} opens the page to every machine that reaches it", err=True)
    hwaksan.serve.launch(offered, host=host, port=port, share=share)
