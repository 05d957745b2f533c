"""The one way a network's dataclass config travels to and from the JSON beside its weights."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

from hwaksan.errors import HwaksanError
from hwaksan.fields import check_typed


class JSONConfig:
    """Mixin for a dataclass config: tuple fields become JSON lists and come back as tuples, a
    nested config (a field whose default is another JSONConfig) travels as a nested object, and an
    unknown key or a value of the wrong type (a number as a string, a negative width) in a saved
    config is a one-line error naming the field."""

    config_name: ClassVar[str] = "network"  # how errors name it: "unknown UNet config keys"

    def to_dict(self) -> dict:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise HwaksanError(
                f"a {cls.config_name} config must be an object, not {type(d).__name__}"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields.keys())
        if unknown:
            raise HwaksanError(
                f"unknown {cls.config_name} config keys {unknown}; known: {sorted(fields)}"
            )
        check_typed(d, typing.get_type_hints(cls), f"{cls.config_name} config")
        return cls(**{k: _from_json(fields[k], v) for k, v in d.items()})


def _to_json(value: Any) -> Any:
    if isinstance(value, JSONConfig):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _from_json(field: dataclasses.Field, value: Any) -> Any:
    """A JSON value as the field holds it: a nested config rebuilt, a list made a tuple where the
    field is declared a tuple (a `list[...]` field, e.g. a vocabulary, stays a list)."""
    nested = field.default_factory
    if isinstance(nested, type) and issubclass(nested, JSONConfig) and isinstance(value, dict):
        return nested.from_dict(value)
    declared = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if isinstance(value, list) and declared.startswith("tuple"):
        return tuple(value)
    return value
