"""Post-processing shared by every annotator: threshold, largest component, hole filling, degenerate masks."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PostprocessConfig:
    """The ``annotation.postprocess`` section.

    Masks covering less than ``min_area_fraction`` or more than ``max_area_fraction`` of the image, or whose
    box is at most ``min_side`` pixels wide or tall, are dropped with a reason (DiverGen drops empty and
    1-pixel masks; a background prompt that selects the object yields an almost full-image mask).
    """

    threshold: float = 0.5
    keep_largest_component: bool = True
    fill_holes: bool = True
    min_area_fraction: float = 0.001
    max_area_fraction: float = 0.98
    min_side: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.min_area_fraction < self.max_area_fraction <= 1:
            raise ValueError("need 0 <= min_area_fraction < max_area_fraction <= 1")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask.astype(bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Foreground plus every background region not connected to the image border."""
    padded = np.pad(mask.astype(np.uint8), 1)
    outside = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, outside, (0, 0), 2)
    return (padded != 2)[1:-1, 1:-1]


def postprocess(raw: np.ndarray, cfg: PostprocessConfig) -> tuple[np.ndarray, str | None]:
    """Clean one raw mask (bool or probabilities); returns the mask and a drop reason (None when kept)."""
    mask = raw > cfg.threshold if raw.dtype != bool else raw
    if cfg.keep_largest_component:
        mask = largest_component(mask)
    if cfg.fill_holes:
        mask = fill_holes(mask)
    fraction = float(mask.mean())
    if fraction < cfg.min_area_fraction:
        return mask, f"empty mask (area {fraction:.4f} < {cfg.min_area_fraction})"
    if fraction > cfg.max_area_fraction:
        return mask, f"mask covers the image (area {fraction:.3f} > {cfg.max_area_fraction})"
    ys, xs = np.nonzero(mask)
    width, height = int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1
    if width <= cfg.min_side or height <= cfg.min_side:
        return mask, f"degenerate mask ({width}x{height} px)"
    return mask, None
