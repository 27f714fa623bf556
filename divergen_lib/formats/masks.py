"""Instance masks as COCO run-length encoding (RLE) through pycocotools."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from pycocotools import mask as mask_utils

from .errors import FormatError


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode a boolean/0-1 H×W mask as compressed RLE with a JSON-ready ``counts`` string."""
    if mask.ndim != 2:
        raise ValueError(f"expected an H×W mask, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts: Any = rle["counts"]  # bytes from pycocotools; JSON needs a string
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts.decode("ascii")}


def as_compressed(rle: dict[str, Any]) -> Any:
    """pycocotools' compressed RLE (``counts`` as bytes) of a JSON RLE, compressed or not."""
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        h, w = rle["size"]
        return mask_utils.frPyObjects(cast(Any, rle), h, w)
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode compressed or uncompressed RLE to a boolean H×W mask."""
    return mask_utils.decode(as_compressed(rle)).astype(bool)


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """Turn any COCO/LVIS segmentation (polygons, uncompressed or compressed RLE) into compressed RLE."""
    if isinstance(segmentation, list):
        if not segmentation or any(len(poly) < 6 or len(poly) % 2 for poly in segmentation):
            raise FormatError("polygon segmentation needs lists of at least 3 (x, y) points")
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        rle = as_compressed(segmentation)
    else:
        raise FormatError(f"unknown segmentation format: {type(segmentation).__name__}")
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def rle_area(rle: dict[str, Any]) -> int:
    """Number of foreground pixels."""
    return int(mask_utils.area(as_compressed(rle)))


def rle_bbox(rle: dict[str, Any]) -> list[float]:
    """Tight box ``[x, y, w, h]`` of the foreground (all zeros for an empty mask)."""
    return [float(v) for v in mask_utils.toBbox(as_compressed(rle))]


def mask_bbox(mask: np.ndarray) -> list[float]:
    """Tight box ``[x, y, w, h]`` of a boolean mask, in COCO's pixel-edge convention."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def check_same_size(mask: np.ndarray, image: np.ndarray, mask_name: str = "mask", image_name: str = "image") -> None:
    """Raise FormatError unless the H×W ``mask`` covers the H×W(×C) ``image`` pixel for pixel (names for the
    message: e.g. the two files)."""
    (mh, mw), (ih, iw) = mask.shape[:2], image.shape[:2]
    if (mh, mw) != (ih, iw):
        raise FormatError(f"{mask_name} is {mw}×{mh} px but its {image_name} is {iw}×{ih} px")
