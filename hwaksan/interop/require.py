"""The optional libraries interop needs, imported on first use with a one-line error if absent."""

from __future__ import annotations

from types import ModuleType

from hwaksan.errors import HwaksanError


def require_diffusers() -> ModuleType:
    """The `diffusers` module, or a HwaksanError saying how to install it."""
    try:
        import diffusers
    except ImportError as e:
        raise HwaksanError(
            "diffusers-format folders need diffusers: pip install 'hwaksan[diffusers]'"
        ) from e
    return diffusers
