"""Instance crops for CLIP features: DiverGen's real-instance crop and the masked generated image.

:func:`instance_crop` is DiverGen's recipe for real (LVIS) instances (``convert_lvis_to_coco_crop.py --mode padding
--fill blur --padding_width 40``): tight box from the mask, background replaced by a 10x10 box blur of the image,
box enlarged by the padding and clipped to the image. :func:`generated_instance` keeps the whole generated frame
and paints everything outside the mask one colour (DiverGen: black, for the inter-similarity; X-Paste: white, for
the CLIP score).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np

from .errors import InputError
from .formats import annotation_mask, check_same_size, image_file, read_image

log = logging.getLogger(__name__)

Fill = Literal["blur", "white", "black", "original"]


def _check(image: np.ndarray, mask: np.ndarray, source: str) -> np.ndarray:
    """The mask as bool, after checking it matches the image and is not empty (``source`` names them in errors)."""
    where = f"{source}: " if source else ""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{where}expected an HxWx3 image, got shape {image.shape}")
    mask = np.asarray(mask).astype(bool)
    check_same_size(mask, image, f"{where}mask")
    if not mask.any():
        raise InputError(f"{where}empty mask: no instance pixels")
    return mask


def instance_crop(
    image: np.ndarray,
    mask: np.ndarray,
    padding: int = 40,
    fill: Fill = "blur",
    blur_kernel: int = 10,
    source: str = "",
) -> np.ndarray:
    """DiverGen's crop of a real instance: pixels outside ``mask`` filled (``blur``: ``cv2.blur`` of the image with
    a ``blur_kernel`` square kernel; ``white``; ``black``; ``original``: untouched), then the mask's tight box
    enlarged by ``padding`` px on each side and clipped to the image. Returns a new uint8 HxWx3 array; ``source``
    (e.g. the image file and annotation id) names the instance in errors."""
    mask = _check(image, mask, source)
    if padding < 0:
        raise InputError(f"padding must be >= 0, got {padding}")
    if fill == "blur":
        background = cv2.blur(image, (blur_kernel, blur_kernel))
    elif fill == "white":
        background = np.full_like(image, 255)
    elif fill == "black":
        background = np.zeros_like(image)
    elif fill == "original":
        background = image
    else:
        raise InputError(f"unknown crop fill {fill!r} (blur, white, black, original)")
    filled = np.where(mask[..., None], image, background)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    y0, y1 = max(rows[0] - padding, 0), min(rows[-1] + 1 + padding, h)
    x0, x1 = max(cols[0] - padding, 0), min(cols[-1] + 1 + padding, w)
    return np.ascontiguousarray(filled[y0:y1, x0:x1])


def generated_instance(
    image: np.ndarray, mask: np.ndarray, background: tuple[int, int, int] = (0, 0, 0), source: str = ""
) -> np.ndarray:
    """The whole generated image with pixels outside ``mask`` set to ``background`` (uint8 HxWx3, a new array);
    ``source`` (e.g. the image file) names the instance in errors."""
    mask = _check(image, mask, source)
    colour = np.asarray(background, dtype=image.dtype)
    return np.where(mask[..., None], image, colour)


def annotation_crops(
    images: dict[int, dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    image_root: str | os.PathLike,
    padding: int = 40,
    blur_kernel: int = 10,
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """:func:`instance_crop` of each LVIS/COCO annotation (``images``: image id -> image info), in order.

    Each image is read once per run of consecutive annotations on it. Annotations whose image is unreadable or
    whose mask is empty are skipped with a warning; returns the crops and the annotations they belong to.
    """
    crops, used = [], []
    cached_id, pixels = None, None
    for ann in annotations:
        info = images[ann["image_id"]]
        if ann["image_id"] != cached_id:
            cached_id = ann["image_id"]
            try:
                pixels = read_image(image_file(info, image_root))
            except InputError as err:
                log.warning("image %s skipped: %s", cached_id, err)
                pixels = None
        mask = annotation_mask(ann, info["height"], info["width"])
        if pixels is None or not mask.any():
            continue
        source = f"{image_file(info, image_root)} (annotation {ann['id']})"
        crops.append(instance_crop(pixels, mask, padding=padding, blur_kernel=blur_kernel, source=source))
        used.append(ann)
    return crops, used
