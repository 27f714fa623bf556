"""Vectorised rendering of toy objects (implicit shapes in local coordinates) and cluttered backgrounds."""

from __future__ import annotations

import cv2
import numpy as np
from matplotlib.path import Path as PolyPath

from .catalog import Appearance


def _regular_polygon(n: int, inner: float | None = None, phase: float = -np.pi / 2) -> np.ndarray:
    k = 2 * n if inner else n
    angles = phase + np.arange(k) * 2 * np.pi / k
    radii = np.where(np.arange(k) % 2, inner, 1.0) if inner else np.ones(k)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


_POLYGONS = {
    "triangle": np.array([[0.0, -1.0], [0.95, 0.75], [-0.95, 0.75]]),
    "pentagon": _regular_polygon(5),
    "hexagon": _regular_polygon(6, phase=0.0),
    "star": _regular_polygon(5, inner=0.45),
    "arrow": np.array([[-1, -0.3], [0.2, -0.3], [0.2, -0.75], [1, 0], [0.2, 0.75], [0.2, 0.3], [-1, 0.3]]),
    "trapezoid": np.array([[-0.5, -0.7], [0.5, -0.7], [1.0, 0.7], [-1.0, 0.7]]),
}


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of local coordinates (u, v in about [-1, 1]) in a shape."""
    r2 = u**2 + v**2
    if shape == "disk":
        return r2 <= 1
    if shape == "ring":
        return (r2 <= 1) & (r2 >= 0.3)
    if shape == "crescent":
        return (r2 <= 1) & ((u - 0.45) ** 2 + v**2 >= 0.6)
    if shape == "heart":
        x, y = 1.25 * u, -1.25 * v + 0.25
        return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1
    if shape == "cross":
        return ((np.abs(u) <= 0.33) & (np.abs(v) <= 1)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1))
    if shape == "capsule":
        return (np.clip(u, -0.5, 0.5) - u) ** 2 + v**2 <= 0.45**2
    if shape in _POLYGONS:
        pts = np.stack([u.ravel(), v.ravel()], 1)
        return PolyPath(_POLYGONS[shape]).contains_points(pts).reshape(u.shape)
    raise ValueError(f"unknown toy shape {shape!r}")


def pattern_mask(pattern: str, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Where the secondary colour of a surface pattern shows (local coordinates, period ``scale``)."""
    if pattern == "plain":
        return np.zeros(u.shape, bool)
    if pattern == "striped":
        return np.mod(u / scale, 1.0) < 0.5
    if pattern == "dotted":
        du, dv = np.mod(u / scale, 1.0) - 0.5, np.mod(v / scale, 1.0) - 0.5
        return du**2 + dv**2 < 0.09
    if pattern == "checkered":
        return (np.floor(u / scale) + np.floor(v / scale)) % 2 == 1
    raise ValueError(f"unknown toy pattern {pattern!r}")


def render_object(
    shape: str, pattern: str, look: Appearance, canvas: int, center: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Render one object on a ``canvas``×``canvas`` frame: (float RGB H×W×3, boolean mask H×W).

    The object's area is about ``(look.size * canvas)**2``; pixels outside the mask are zero.
    """
    side = look.size * canvas
    half_w, half_h = side * np.sqrt(look.aspect) / 2, side / np.sqrt(look.aspect) / 2
    theta = np.deg2rad(look.rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    ys, xs = np.mgrid[0:canvas, 0:canvas].astype(np.float64) + 0.5
    dx, dy = xs - center[0], ys - center[1]
    u = (cos * dx + sin * dy) / half_w
    v = (-sin * dx + cos * dy) / half_h
    mask = shape_mask(shape, u, v)
    base = look.rgb()
    second = base * 0.45 + (40.0 if look.value < 0.6 else 0.0)
    rgb = np.where(pattern_mask(pattern, u, v, look.pattern_scale)[..., None], second, base)
    shading = 1.0 - 0.18 * np.clip((u + v) / 2, -1, 1)  # light from the upper left
    rgb = np.clip(rgb * shading[..., None], 0, 255) * mask[..., None]
    return rgb, mask


def render_background(rng: np.random.Generator, canvas: int, strokes: int) -> np.ndarray:
    """A cluttered, unannotated background: tinted gradient, noise, thin strokes and faint blobs (uint8)."""
    tint = rng.uniform(90, 200, 3)
    ys, xs = np.mgrid[0:canvas, 0:canvas] / canvas
    gx, gy = rng.uniform(-40, 40, 2)
    img = tint + (gx * xs + gy * ys)[..., None] + rng.normal(0, 6, (canvas, canvas, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(strokes):
        colour = tuple(int(c) for c in np.clip(tint + rng.uniform(-50, 50, 3), 0, 255))
        if rng.random() < 0.6:
            p1, p2 = rng.integers(0, canvas, 2), rng.integers(0, canvas, 2)
            cv2.line(img, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), colour, int(rng.integers(1, 3)))
        else:
            c, axes = rng.integers(0, canvas, 2), rng.integers(4, max(5, canvas // 6), 2)
            overlay = img.copy()
            cv2.ellipse(
                overlay,
                (int(c[0]), int(c[1])),
                (int(axes[0]), int(axes[1])),
                float(rng.uniform(0, 180)),
                0,
                360,
                colour,
                -1,
            )
            img = cv2.addWeighted(overlay, 0.35, img, 0.65, 0)
    return img
