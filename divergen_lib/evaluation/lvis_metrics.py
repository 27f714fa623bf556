"""``evaluate_lvis``: LVIS AP (federated: negative and not-exhaustive categories, 300 detections per image).

Two backends give the same numbers: ``lvis`` (the reference LVIS API; it uses ``np.float``, removed in
numpy 2, so an alias is set only around its call) and ``fast`` (faster-coco-eval's LVIS mode, whose
300-detection cap is per image *and category*; detections are therefore first cut to each image's top 300
by score, which is lvis-api's rule).
"""

from __future__ import annotations

import copy
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
MAX_DETS = 300
_FAST_KEYS = dict(
    zip(METRICS, ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AP_large", "APr", "APc", "APf"), strict=True)
)


def top_detections(results: Iterable[dict[str, Any]], max_per_image: int = MAX_DETS) -> list[dict[str, Any]]:
    """Each image's ``max_per_image`` highest-scoring detections (stable for equal scores)."""
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for det in results:
        by_image[det["image_id"]].append(det)
    kept = []
    for dets in by_image.values():
        kept += sorted(dets, key=lambda d: -d["score"])[:max_per_image]
    return kept


@contextmanager
def _numpy_float_alias() -> Iterator[None]:
    """``np.float`` for the duration of an lvis-api call (numpy 2 removed it)."""
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.float  # type: ignore[attr-defined]


def _lvis_api(gt_json_path: str, results: list[dict[str, Any]], iou_type: str) -> dict[str, float]:
    from lvis import LVIS, LVISEval, LVISResults

    with _numpy_float_alias():
        gt = LVIS(gt_json_path)
        evaluator = LVISEval(gt, LVISResults(gt, results, max_dets=MAX_DETS), iou_type)
        evaluator.run()
    return {k: float(evaluator.results[k]) for k in METRICS}


def _faster_coco_eval(gt_json_path: str, results: list[dict[str, Any]], iou_type: str) -> dict[str, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(gt_json_path)
    evaluator = COCOeval_faster(gt, gt.loadRes(results), iou_type, lvis_style=True, print_function=log.debug)
    evaluator.params.maxDets = [MAX_DETS]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats_as_dict
    return {k: float(stats[_FAST_KEYS[k]]) for k in METRICS}


def evaluate_lvis(
    gt_json_path: str | os.PathLike,
    results: Iterable[dict[str, Any]],
    iou_type: Literal["bbox", "segm"],
    backend: Literal["fast", "lvis"] = "fast",
) -> dict[str, float]:
    """AP, AP50, AP75, APs, APm, APl, APr, APc, APf of LVIS-format ``results`` against the ground truth.

    ``results``: dicts with ``image_id``, ``category_id``, ``score``, ``bbox`` and (for ``segm``) an RLE
    ``segmentation``. A metric with nothing to average is -1, as both APIs report it.
    """
    dets = copy.deepcopy(top_detections(results))
    if not dets:
        return dict.fromkeys(METRICS, -1.0)
    evaluate = _lvis_api if backend == "lvis" else _faster_coco_eval
    return evaluate(str(gt_json_path), dets, iou_type)
