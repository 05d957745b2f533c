"""Whether a long call shows a progress bar: by default only at a terminal, as diffusers does, so
a script's first `generate` is never minutes of silence and a log file never fills with bars."""

from __future__ import annotations

import sys


def show_progress(progress: bool | None) -> bool:
    """`progress` as given, or, when None, whether stderr (where the bar goes) is a terminal."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())
