"""The one way a network's dataclass config travels to and from the JSON beside its weights."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from hwaksan.errors import HwaksanError


class JSONConfig:
    """Mixin for a dataclass config: tuples become JSON lists and come back as tuples, and an
    unknown key in a saved config is a one-line error naming the keys that exist."""

    config_name: ClassVar[str] = "network"  # how errors name it: "unknown UNet config keys"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise HwaksanError(
                f"unknown {cls.config_name} config keys {unknown}; known: {sorted(known)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
