"""The toy generator: renders one toy-world object from a prompt on a plain background (a TOY stand-in).

Words of the prompt steer attributes — colour words set the hue (absolute, like a real model asked for a
"blue banana"), size words the object's extent, viewpoint words its rotation and aspect, style and material
words brightness, saturation and pattern scale. Attributes no word mentions are drawn from the seed within
a band around the *style's* prototype of the category: like a real text-to-image model, a bare template
prompt gives a narrow, typical look, and two styles ("models") have different typical looks. The true
object mask is returned with the image, so annotation quality can be measured.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..config import ConfigError, parse_options
from ..prompts import WHITE_BACKGROUND
from ..toyworld import Appearance, CategorySpec, load_toyworld
from ..toyworld.catalog import ATTRIBUTES
from ..toyworld.layout import ToyWorldLayout
from ..toyworld.render import render_object
from .base import GeneratedImage, GenerationRequest, ModelConfig

HUES = {
    "red": 0.0,
    "orange": 0.07,
    "golden": 0.12,
    "yellow": 0.15,
    "green": 0.33,
    "teal": 0.47,
    "blue": 0.62,
    "purple": 0.76,
    "pink": 0.9,
    "brown": 0.07,
}
GREYS = {"black": 0.15, "grey": 0.55, "silver": 0.75, "white": 0.95}
# word -> {attribute: position in the category's range (0..1)}
STEERING: dict[str, dict[str, float]] = {
    "tiny": {"size": 0.0},
    "small": {"size": 0.25},
    "medium-sized": {"size": 0.5},
    "large": {"size": 0.8},
    "oversized": {"size": 1.0},
    "front": {"rotation": 0.5},
    "above": {"rotation": 0.5, "aspect": 0.5},
    "side": {"aspect": 0.02},
    "three-quarter": {"rotation": 0.3, "aspect": 0.3},
    "tilted": {"rotation": 0.1},
    "upside": {"rotation": 1.0},
    "glossy": {"value": 1.0, "saturation": 0.9},
    "matte": {"saturation": 0.15},
    "weathered": {"value": 0.05},
    "vintage": {"saturation": 0.05},
    "modern": {"value": 0.8},
    "cartoon-style": {"saturation": 1.0},
    "minimalist": {"pattern_scale": 1.0},
    "ornate": {"pattern_scale": 0.0},
    "hand-painted": {"saturation": 0.6},
    "wooden": {"pattern_scale": 0.8},
    "metal": {"pattern_scale": 0.15},
    "plastic": {"pattern_scale": 0.5},
    "ceramic": {"pattern_scale": 0.35},
    "glass": {"value": 0.95},
    "fabric": {"pattern_scale": 0.1},
    "leather": {"value": 0.3},
    "stone": {"saturation": 0.2},
    "paper": {"pattern_scale": 0.9},
    "rubber": {"value": 0.4},
}
FILL = (0.42, 0.78)  # object side / canvas side, from the size attribute


@dataclass(frozen=True)
class ToyOptions:
    """``options`` of a toy model: the world to render, the rendering style, the image size."""

    world: Path
    style: Literal["flat", "soft"] = "flat"
    size: int = 128
    default_spread: float = 0.35


def prototype(style: str, category_id: int) -> np.ndarray:
    """The style's typical position (unit cube, one value per attribute) for a category."""
    digest = hashlib.sha256(f"{style}|{category_id}".encode()).digest()
    return 0.2 + 0.6 * np.frombuffer(digest[: len(ATTRIBUTES)], np.uint8) / 255.0


def steer(spec: CategorySpec, prompt: str, rng: np.random.Generator, style: str, spread: float) -> Appearance:
    """The appearance a prompt asks for; unsteered attributes vary around the style's prototype."""
    u = np.clip(prototype(style, spec.id) + (rng.random(len(ATTRIBUTES)) - 0.5) * spread, 0.0, 1.0)
    words = re.findall(r"[a-z\-]+", prompt.lower().replace(WHITE_BACKGROUND.strip(", "), ""))
    for word in words:
        for attr, value in STEERING.get(word, {}).items():
            u[ATTRIBUTES.index(attr)] = np.clip(value + rng.normal(0, 0.05), 0, 1)
    look = spec.appearance_at(u)
    colours = [w for w in words if w in HUES or w in GREYS]
    if colours:
        word = colours[0]
        if word in GREYS:
            look = replace(look, saturation=0.08, value=GREYS[word])
        else:
            look = replace(look, hue=float((HUES[word] + rng.normal(0, 0.02)) % 1.0))
    return look


class ToyGenerator:
    """Toy text-to-image backend over a built toy world (styles ``flat`` and ``soft``)."""

    options_cls = ToyOptions

    def __init__(self, model: ModelConfig, device: str = "cpu") -> None:
        self.options = parse_options(ToyOptions, model.options, f"model {model.name} options")
        if not ToyWorldLayout(self.options.world).world.is_file():
            raise ConfigError(
                f"model {model.name}: no toy world at {self.options.world} (build it with the toyworld stage)"
            )
        world = load_toyworld(self.options.world)
        self.specs = {s.id: s for s in world.categories + world.extra_categories}

    def render(self, request: GenerationRequest) -> GeneratedImage:
        """One image, a function of the request's prompt and seed only."""
        if request.category_id not in self.specs:
            raise ValueError(f"category id {request.category_id} is not a toy-world kind")
        spec = self.specs[request.category_id]
        rng = np.random.default_rng(request.seed)
        opts = self.options
        look = steer(spec, request.prompt, rng, opts.style, opts.default_spread)
        size_u = (look.size - spec.size[0]) / max(spec.size[1] - spec.size[0], 1e-6)
        fill = FILL[0] + (FILL[1] - FILL[0]) * float(np.clip(size_u, 0, 1))
        canvas = opts.size
        center = tuple(canvas / 2 + rng.normal(0, canvas * 0.03, 2))
        rgb, mask = render_object(spec.shape, spec.pattern, replace(look, size=fill), canvas, center)
        if opts.style == "flat":
            background = np.full((canvas, canvas, 3), 255.0)
            image = np.where(mask[..., None], rgb, background)
        else:  # soft: warm off-white vignette, feathered edges (normalised blur), sensor noise
            ys, xs = np.mgrid[0:canvas, 0:canvas] / canvas
            shade = 1 - 0.12 * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2)
            background = np.stack([246 * shade, 242 * shade, 232 * shade], -1)
            sigma = canvas / 200
            alpha = cv2.GaussianBlur(mask.astype(np.float64), (0, 0), sigma)[..., None]
            colour = cv2.GaussianBlur(rgb, (0, 0), sigma) / np.maximum(alpha, 1e-6)
            image = alpha * colour + (1 - alpha) * background + rng.normal(0, 2.5, (canvas, canvas, 3))
        return GeneratedImage(np.clip(image, 0, 255).astype(np.uint8), mask)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        return [self.render(r) for r in requests]
