"""The toy world's category universe: shape x surface pattern kinds, each with an appearance distribution.

A category is a (shape, pattern) kind, e.g. ``striped_star``. Its appearance (colour, size, aspect,
rotation, pattern scale) is drawn from a per-category distribution: a box in a 6-d unit cube mapped to
attribute ranges. Rare categories are seen in train only inside a narrow slice of that box; val and the
generators cover all of it.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

SHAPES = (
    "disk",
    "ring",
    "crescent",
    "heart",
    "square",
    "diamond",
    "triangle",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "arrow",
    "trapezoid",
    "capsule",
)
PATTERNS = ("plain", "striped", "dotted", "checkered")
N_KINDS = len(SHAPES) * len(PATTERNS)
ATTRIBUTES = ("hue", "saturation", "value", "size", "aspect", "rotation", "pattern_scale")


@dataclass(frozen=True)
class Appearance:
    """One concrete look of an object."""

    hue: float  # 0..1
    saturation: float  # 0..1
    value: float  # 0..1
    size: float  # sqrt(object area / image area), as in LVIS's area prior
    aspect: float  # width / height
    rotation: float  # degrees
    pattern_scale: float  # pattern period in units of the object's half-size

    def rgb(self) -> np.ndarray:
        """Base colour as float RGB in 0..255."""
        return np.array(colorsys.hsv_to_rgb(self.hue % 1.0, self.saturation, self.value)) * 255.0


@dataclass(frozen=True)
class CategorySpec:
    """A category kind and the ranges its appearance is drawn from."""

    id: int
    shape: str
    pattern: str
    hue_center: float
    hue_width: float
    saturation: tuple[float, float]
    value: tuple[float, float]
    size: tuple[float, float]
    aspect: tuple[float, float]
    max_rotation: float
    pattern_scale: tuple[float, float]
    slice_start: tuple[float, ...]  # where the narrow train slice of a rare category starts, per attribute

    @property
    def name(self) -> str:
        return f"{self.pattern}_{self.shape}"

    def to_lvis_category(self) -> dict:
        """LVIS-schema category entry (counts and frequency are filled from the annotations later)."""
        return {
            "id": self.id,
            "name": self.name,
            "synset": f"toyworld.{self.name}.n.01",
            "synonyms": [self.name],
            "def": f"a toy-world {self.shape} shape with a {self.pattern} surface",
        }

    def sample(self, rng: np.random.Generator, narrow_slice: float | None = None) -> Appearance:
        """Draw an appearance; with ``narrow_slice`` only from that fraction of each attribute's range."""
        u = rng.random(len(ATTRIBUTES))
        if narrow_slice is not None:
            u = np.asarray(self.slice_start) + u * narrow_slice
        return self.appearance_at(u)

    def appearance_at(self, u: np.ndarray) -> Appearance:
        """Map a point of the unit cube (one coordinate per attribute) to an appearance."""

        def lerp(bounds: tuple[float, float], t: float) -> float:
            return float(bounds[0] + (bounds[1] - bounds[0]) * t)

        return Appearance(
            hue=float((self.hue_center + (u[0] - 0.5) * self.hue_width) % 1.0),
            saturation=lerp(self.saturation, u[1]),
            value=lerp(self.value, u[2]),
            size=lerp(self.size, u[3]),
            aspect=float(np.exp(lerp((np.log(self.aspect[0]), np.log(self.aspect[1])), u[4]))),
            rotation=float((u[5] - 0.5) * 2 * self.max_rotation),
            pattern_scale=lerp(self.pattern_scale, u[6]),
        )


def make_catalog(n_categories: int, rng: np.random.Generator, slice_width: float) -> list[CategorySpec]:
    """Draw ``n_categories`` distinct kinds with their appearance distributions (ids from 1)."""
    kinds = [(s, p) for s in SHAPES for p in PATTERNS]
    order = rng.permutation(len(kinds))[:n_categories]
    specs = []
    for cid, k in enumerate(order, start=1):
        shape, pattern = kinds[k]
        lo_size = rng.uniform(0.12, 0.26)
        lo_aspect = rng.uniform(0.6, 1.0)
        specs.append(
            CategorySpec(
                id=cid,
                shape=shape,
                pattern=pattern,
                hue_center=float(rng.random()),
                hue_width=float(rng.uniform(0.15, 0.45)),
                saturation=(float(rng.uniform(0.45, 0.7)), 0.95),
                value=(float(rng.uniform(0.5, 0.7)), 0.98),
                size=(float(lo_size), float(lo_size + rng.uniform(0.12, 0.22))),
                aspect=(float(lo_aspect), float(lo_aspect * rng.uniform(1.2, 1.7))),
                max_rotation=float(rng.choice([20.0, 60.0, 180.0])),
                pattern_scale=(0.3, 0.7),
                slice_start=tuple(float(v) for v in rng.uniform(0, 1 - slice_width, len(ATTRIBUTES))),
            )
        )
    return specs


def spec_to_dict(spec: CategorySpec) -> dict:
    """JSON-ready form of a spec."""
    return asdict(spec)


def spec_from_dict(data: dict) -> CategorySpec:
    """Inverse of :func:`spec_to_dict`."""
    tuples = ("saturation", "value", "size", "aspect", "pattern_scale", "slice_start")
    return CategorySpec(**{k: tuple(v) if k in tuples else v for k, v in data.items()})
