"""`hwaksan serve`: a local web page to generate from any shipped or local model.

The page's logic is plain functions a test calls without a browser: `form` (which inputs a model
takes, one widget per input name), `request` (form values to a checked `generate` call, errors as
one sentence), `models` (loaded models, one generation at a time per model), `actions` (what
choosing a model and pressing Generate do). Only `page` (the Gradio layout) imports Gradio, and
only when the page is served: `import hwaksan` stays fast.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from hwaksan.errors import HwaksanError

if TYPE_CHECKING:
    from hwaksan.serve.models import Models


def launch(models: Models, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           block: bool = True) -> Any:  # fmt: skip
    """Serve the page offering `models` on host:port; blocks until interrupted unless `block`
    is False (then the launched Gradio page, to `.close()`). Gradio is imported here."""
    if importlib.util.find_spec("gradio") is None:
        raise HwaksanError("hwaksan serve needs Gradio: pip install 'hwaksan[serve]'")
    from hwaksan.serve.page import serve_page

    return serve_page(models, host=host, port=port, share=share, block=block)
