"""Mask quality against known true masks: IoU and boundary F-score."""

from __future__ import annotations

import cv2
import numpy as np


def mask_iou(pred: np.ndarray, true: np.ndarray) -> float:
    """Intersection over union (1.0 when both are empty)."""
    union = np.logical_or(pred, true).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, true).sum() / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """One-pixel inner boundary of a mask."""
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)).astype(bool)


def boundary_f_score(pred: np.ndarray, true: np.ndarray, tolerance: float = 2.0) -> float:
    """F-measure of boundary pixels matched within ``tolerance`` px (precision: predicted, recall: true)."""
    bp, bt = boundary(pred), boundary(true)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0

    def distance_to(edges: np.ndarray) -> np.ndarray:
        return cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)

    precision = float((distance_to(bt)[bp] <= tolerance).mean())
    recall = float((distance_to(bp)[bt] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
