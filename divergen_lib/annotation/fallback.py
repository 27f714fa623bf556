"""The weight-free FALLBACK annotator: the background is what can be reached from the image border.

Generated instances are asked for "in a white background", so the border is background. Starting from every
border pixel, a flood fill with a floating colour range (each pixel compared with its already-filled
neighbour) follows smooth background gradients and stops at object edges; the object is what the fill does
not reach. Optionally GrabCut refines that split. It needs no weights, and is labelled ``border_fallback``
wherever its masks appear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..config import parse_options
from .base import AnnotatorConfig


@dataclass(frozen=True)
class FallbackOptions:
    """``tolerance``: largest colour step (0-255 per channel) between neighbouring background pixels;
    ``smooth``: Gaussian sigma (px) applied first, against sensor noise; ``seed_distance``: how far (RGB
    distance) from the border's median colour a border pixel may be and still seed the fill;
    ``refine: grabcut`` runs GrabCut initialised from the flood fill."""

    tolerance: int = 3
    smooth: float = 0.0
    seed_distance: float = 40.0
    refine: Literal["none", "grabcut"] = "grabcut"
    grabcut_iterations: int = 3


def border_background(image: np.ndarray, tolerance: int, smooth: float, seed_distance: float) -> np.ndarray:
    """Pixels connected, through colour steps of at most ``tolerance``, to border pixels of the background colour.

    Only border pixels within ``seed_distance`` of the border's median colour seed the fill, so an object cut
    by the image edge is not flooded from its own border pixels.
    """
    work = cv2.GaussianBlur(image, (0, 0), smooth) if smooth > 0 else image.copy()
    h, w = work.shape[:2]
    border = [(x, 0) for x in range(w)] + [(x, h - 1) for x in range(w)]
    border += [(0, y) for y in range(h)] + [(w - 1, y) for y in range(h)]
    colours = np.array([work[y, x] for x, y in border], np.float64)
    typical = np.linalg.norm(colours - np.median(colours, axis=0), axis=1) <= seed_distance
    filled = np.zeros((h + 2, w + 2), np.uint8)
    diff = (tolerance,) * 3
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    for (x, y), seed in zip(border, typical, strict=True):
        if seed and not filled[y + 1, x + 1]:
            cv2.floodFill(work, filled, (x, y), 0, diff, diff, flags)
    return filled[1:-1, 1:-1].astype(bool)


def grabcut_refine(image: np.ndarray, background: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut with the border as sure background, the fill as probable background, the rest probable object."""
    init = np.where(background, cv2.GC_PR_BGD, cv2.GC_PR_FGD).astype(np.uint8)
    init[[0, -1], :] = cv2.GC_BGD
    init[:, [0, -1]] = cv2.GC_BGD
    if not (init == cv2.GC_PR_FGD).any():
        return np.zeros(background.shape, bool)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(image, init, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return np.isin(init, (cv2.GC_FGD, cv2.GC_PR_FGD))


class BorderFallbackAnnotator:
    """Object = not reachable from the border (weight-free fallback for offline use and the demo)."""

    options_cls = FallbackOptions

    def __init__(self, config: AnnotatorConfig, device: str = "cpu") -> None:
        self.options = parse_options(FallbackOptions, config.options, f"annotation method {config.name} options")

    def raw_masks(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        o = self.options
        masks = []
        for image in images:
            background = border_background(image, o.tolerance, o.smooth, o.seed_distance)
            if o.refine == "grabcut":
                masks.append(grabcut_refine(image, background, o.grabcut_iterations))
            else:
                masks.append(~background)
        return masks
