"""The vocabulary of the shapes world (shapes, colors, sizes, positions) and its config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hwaksan.errors import HwaksanError

BASE_SHAPES = ("circle", "square", "triangle")
NEW_SHAPES = ("star", "heart", "cross")  # held out of the base set: "new concepts"
ALL_SHAPES = BASE_SHAPES + NEW_SHAPES
COLORS = ("red", "green", "blue", "yellow", "cyan", "magenta", "white")
SIZES = ("small", "large")
RESOLUTIONS = (16, 32, 64)

# uint8 RGB of every color an object or a background may take.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
    "navy": (0, 0, 96),
}

# Object scale r (half-extent of a unit shape, see geometry.py) as a fraction of the resolution.
SIZE_RADIUS: dict[str, tuple[float, float]] = {"small": (0.12, 0.14), "large": (0.19, 0.22)}
SIZE_THRESHOLD = 0.165  # r / resolution above which an object reads as "large"

# The 3x3 grid of position words, row-major from the top left.
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
RELATIONS = ("left of", "right of", "above", "below")


@dataclass(frozen=True)
class ShapesConfig:
    """Which scenes the world draws; JSON-able (`to_dict` / `from_dict`)."""

    resolution: int = 32  # 16, 32 or 64 pixels square
    min_objects: int = 1
    max_objects: int = 3  # at most 3
    shapes: tuple[str, ...] = BASE_SHAPES  # any of ALL_SHAPES
    colors: tuple[str, ...] = COLORS
    sizes: tuple[str, ...] = SIZES
    background: str = "black"  # a name in BACKGROUNDS
    watermark: bool = False  # a white mark near the bottom-right corner (`watermark.py`)

    def __post_init__(self) -> None:
        for name in ("shapes", "colors", "sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check(self.resolution in RESOLUTIONS, f"resolution must be one of {RESOLUTIONS}")
        _check(
            1 <= self.min_objects <= self.max_objects <= 3,
            "need 1 <= min_objects <= max_objects <= 3",
        )
        _check_names("shapes", self.shapes, ALL_SHAPES)
        _check_names("colors", self.colors, COLORS)
        _check_names("sizes", self.sizes, SIZES)
        _check(self.background in BACKGROUNDS, f"background must be one of {tuple(BACKGROUNDS)}")
        _check(bool(self.object_colors), "every color in `colors` equals the background")

    @property
    def object_colors(self) -> tuple[str, ...]:
        """The colors objects take: `colors` less any that equals the background."""
        bg = BACKGROUNDS[self.background]
        return tuple(c for c in self.colors if PALETTE[c] != bg)

    def to_dict(self) -> dict:
        """The fields; `watermark` only when on, so older configs read back unchanged."""
        d = asdict(self)
        if not self.watermark:
            del d["watermark"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ShapesConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        _check(not unknown, f"unknown shapes config keys {sorted(unknown)}")
        return cls(**d)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise HwaksanError(f"bad shapes config: {message}.")


def _check_names(field: str, names: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    bad = [n for n in names if n not in allowed]
    _check(bool(names) and not bad, f"{field} must be a non-empty subset of {allowed} (got {bad})")


def num_classes(config: ShapesConfig) -> int:
    """Number of shape x color class ids (for single-object class-conditional models)."""
    return len(config.shapes) * len(config.colors)


def class_id(shape: str, color: str, config: ShapesConfig) -> int:
    """The class id of a (shape, color) pair: shape index * len(colors) + color index."""
    return config.shapes.index(shape) * len(config.colors) + config.colors.index(color)


def class_name(class_id: int, config: ShapesConfig) -> tuple[str, str]:
    """The (shape, color) pair of a class id."""
    return config.shapes[class_id // len(config.colors)], config.colors[
        class_id % len(config.colors)
    ]


def position_word(x: float, y: float, resolution: int) -> str:
    """The 3x3 grid word ("top left", "center", ...) of a point in pixel coordinates."""
    col = min(max(int(3 * x / resolution), 0), 2)
    row = min(max(int(3 * y / resolution), 0), 2)
    return POSITIONS[3 * row + col]


def size_word(radius: float, resolution: int) -> str:
    """ "small" or "large" from an object's scale r in pixels."""
    return "large" if radius / resolution > SIZE_THRESHOLD else "small"


def relation_word(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Where centroid a lies relative to b along the dominant axis: "left of", "above", ..."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"
