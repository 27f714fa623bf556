"""Instance-pool entries: a kept instance as a tight RGBA crop with binary alpha, as DiverGen's training reads it."""

from __future__ import annotations

import numpy as np

from ..annotation.postprocess import largest_component
from ..errors import InputError
from ..formats import check_same_size


def rgba_crop(image: np.ndarray, mask: np.ndarray, source: str = "") -> np.ndarray:
    """Largest component of ``mask`` -> RGBA crop of its tight box, alpha 255 on the object and 0 elsewhere;
    ``source`` (e.g. the mask's file) names the instance in errors."""
    where = f"{source}: " if source else ""
    check_same_size(mask, image, f"{where}mask")
    component = largest_component(mask)
    ys, xs = np.nonzero(component)
    if ys.size == 0:
        raise InputError(f"{where}empty mask: nothing to crop")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if y1 - y0 <= 1 or x1 - x0 <= 1:
        raise InputError(f"{where}degenerate mask ({x1 - x0}x{y1 - y0} px)")
    alpha = np.where(component[y0:y1, x0:x1], 255, 0).astype(np.uint8)
    return np.dstack([image[y0:y1, x0:x1], alpha])
