"""LVIS results json, written the same way by every engine.

A results file is the list LVIS/COCO evaluation reads: one dict per detection with ``image_id``,
``category_id`` (the dataset's id, not a classifier index), ``score``, ``bbox`` as ``[x, y, w, h]`` and,
when masks were predicted, a compressed-RLE ``segmentation``. At most ``max_per_image`` (LVIS: 300)
detections per image are kept, the highest-scoring ones.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .atomic import read_json, write_json
from .errors import FormatError
from .masks import mask_to_rle

MAX_DETS = 300  # LVIS keeps at most 300 detections per image


def top_detections(results: Iterable[dict[str, Any]], max_per_image: int = MAX_DETS) -> list[dict[str, Any]]:
    """Each image's ``max_per_image`` highest-scoring detections (stable for equal scores)."""
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for det in results:
        by_image[det["image_id"]].append(det)
    kept = []
    for dets in by_image.values():
        kept += sorted(dets, key=lambda d: -d["score"])[:max_per_image]
    return kept


def detections_to_results(
    image_id: int,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    category_ids: Sequence[int] | np.ndarray,
    masks: np.ndarray | None = None,
    max_per_image: int = MAX_DETS,
) -> list[dict[str, Any]]:
    """One image's detections as results dicts: boxes ``N×4`` in ``x0, y0, x1, y1`` pixels, ``scores`` ``N``,
    dataset category ids ``N``, optional boolean masks ``N×H×W``; the top ``max_per_image`` by score."""
    boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(boxes_xyxy) == len(scores) == len(category_ids) or (masks is not None and len(masks) != len(scores)):
        raise ValueError("boxes, scores, category ids and masks must have one entry per detection")
    order = np.argsort(-scores, kind="stable")[:max_per_image]
    results = []
    for i in order:
        x0, y0, x1, y1 = (float(v) for v in boxes_xyxy[i])
        det = {
            "image_id": int(image_id),
            "category_id": int(category_ids[i]),
            "score": float(scores[i]),
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        }
        if masks is not None:
            det["segmentation"] = mask_to_rle(np.asarray(masks[i], dtype=bool))
        results.append(det)
    return results


def write_results(results: list[dict[str, Any]], path: str | os.PathLike, max_per_image: int = MAX_DETS) -> None:
    """Write detections as an LVIS results json (atomically), each image cut to its top ``max_per_image``."""
    write_json(top_detections(results, max_per_image), path)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read an LVIS results json; a file that is not a list of detections raises FormatError."""
    data = read_json(path)
    keys = {"image_id", "category_id", "score", "bbox"}
    if not isinstance(data, list) or any(not isinstance(d, dict) or not keys <= d.keys() for d in data):
        raise FormatError(f"{path}: expected a list of detections with {', '.join(sorted(keys))}")
    return data


def unknown_id_problem(key: str, value: int, what: str) -> str:
    """The message for an image or category id the ground truth does not have."""
    return f"{key} {value} is not {what} of the ground truth"


def entry_problem(det: Any, images: set[int] | None, categories: set[int] | None, needs_mask: bool) -> str | None:
    """What is wrong with one results entry, or None (ids are checked when the ground truth's are given)."""
    if not isinstance(det, dict):
        return f"not a mapping but {type(det).__name__}"
    for key in ("image_id", "category_id", "score", "bbox"):
        if key not in det:
            return f"no {key!r}"
    for key, known, what in (("image_id", images, "an image"), ("category_id", categories, "a category")):
        value = det[key]
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{key} {value!r} is not an integer"
        if known is not None and value not in known:
            return unknown_id_problem(key, value, what)
    if not _finite(det["score"]):
        return f"score {det['score']!r} is not a finite number"
    box = det["bbox"]
    if not isinstance(box, list | tuple) or len(box) != 4 or not all(_finite(v) for v in box):
        return f"bbox {box!r} is not four finite numbers [x, y, w, h]"
    if box[2] < 0 or box[3] < 0:
        return f"bbox {box!r} has a negative width or height"
    if needs_mask:
        rle = det.get("segmentation")
        if not isinstance(rle, dict) or not {"size", "counts"} <= rle.keys():
            return "no RLE segmentation ({'size': [h, w], 'counts': ...}), which segm evaluation needs"
        size, counts = rle["size"], rle["counts"]
        if not isinstance(size, list | tuple) or len(size) != 2 or not all(_count(v) for v in size):
            return f"segmentation size {size!r} is not [height, width]"
        if not isinstance(counts, str | bytes) and not (isinstance(counts, list) and all(_count(v) for v in counts)):
            return "segmentation counts is neither a compressed RLE string nor a list of run lengths"
    return None


def _count(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_results(
    results: Sequence[Any],
    iou_type: str,
    images: Iterable[int] | None = None,
    categories: Iterable[int] | None = None,
    source: str = "results",
) -> None:
    """Raise FormatError naming the first malformed entry of ``results`` and its index: a missing key, a NaN/Inf
    score, a NaN/Inf/negative-size box, no RLE for ``segm``, and (given the ground truth's ids) an unknown image
    or category."""
    image_set = None if images is None else set(images)
    category_set = None if categories is None else set(categories)
    for index, det in enumerate(results):
        problem = entry_problem(det, image_set, category_set, iou_type == "segm")
        if problem is not None:
            raise FormatError(f"{source}[{index}]: {problem}")
