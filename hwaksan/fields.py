"""Typed reading of a JSON config: every field's type and range checked against what it declares.

One reader for every saved config (a model folder's fields and schedule, each network's dataclass
config): a field of the wrong type or out of range is a one-line HwaksanError naming the file and
the field, never a traceback from deep inside a constructor.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from hwaksan.errors import HwaksanError

Check = Callable[[Any], bool]


def mismatch(value: Any, hint: Any) -> str | None:
    """None when `value` (parsed JSON) fits the type hint, else what the hint wants, in words.

    Numbers must be finite; whole numbers (int fields, and ints inside tuples) non-negative."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return None
    if origin in (typing.Union, types.UnionType):
        wants = [mismatch(value, a) for a in args]
        return None if None in wants else " or ".join(wants)
    if dataclasses.is_dataclass(hint):  # a nested config: an object, checked by its own reader
        return None if isinstance(value, dict) else "an object"
    if hint is type(None):
        return None if value is None else "null"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "a whole number >= 0"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok and math.isfinite(value) else "a finite number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            return "an object"
        inner = args[1] if len(args) == 2 else Any
        bad = next((mismatch(v, inner) for v in value.values() if mismatch(v, inner)), None)
        return None if bad is None else f"an object of {bad} values"
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, list):
            return "a list"
        inner = args[0] if args else Any
        bad = next((mismatch(v, inner) for v in value if mismatch(v, inner)), None)
        return None if bad is None else f"a list of {bad} items"
    return None  # a type we do not check (a nested config is checked by its own reader)


def check_fields(config: dict, checks: dict[str, tuple[Check, str]], where: str) -> None:
    """Each present field of `config` passes its check, else a one-line error naming it."""
    for name, (check, wanted) in checks.items():
        if name in config and not _passes(check, config[name]):
            raise HwaksanError(f"{where}: {name!r} must be {wanted}, not {_show(config[name])}")


def check_typed(config: dict, hints: dict[str, Any], where: str) -> None:
    """Each present field of `config` fits its declared type (`mismatch`)."""
    for name, hint in hints.items():
        wanted = mismatch(config[name], hint) if name in config else None
        if wanted is not None:
            raise HwaksanError(f"{where}: {name!r} must be {wanted}, not {_show(config[name])}")


def _passes(check: Check, value: Any) -> bool:
    try:
        return bool(check(value))
    except (TypeError, ValueError, AttributeError):
        return False


def _show(value: Any, limit: int = 40) -> str:
    """A value as JSON-ish text, short enough for one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# small checks for the hand-written field tables
def is_int(value: Any, low: int = 0, high: float = math.inf) -> bool:
    """A whole number (not a bool) in [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    """A finite number (not a bool) in [low, high]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value) and low <= value <= high


def is_shape(value: Any, length: int = 3) -> bool:
    """A list of `length` positive whole numbers (an image or latent shape C, H, W)."""
    return isinstance(value, list) and len(value) == length and all(is_int(v, 1) for v in value)
