"""``evaluate_lvis``: LVIS AP (federated: negative and not-exhaustive categories, 300 detections per image).

Two backends give the same numbers: ``lvis`` (the reference LVIS API; it uses ``np.float``, removed in
numpy 2, so an alias is set only around its call) and ``fast`` (faster-coco-eval's LVIS mode, whose
300-detection cap is per image *and category*; detections are therefore first cut to each image's top 300
by score, which is lvis-api's rule).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..formats import MAX_DETS, top_detections

log = logging.getLogger(__name__)

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
_FAST_KEYS = dict(
    zip(METRICS, ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AP_large", "APr", "APc", "APf"), strict=True)
)


@dataclass(frozen=True)
class LvisEvaluation:
    """Summary metrics and per-category AP (category id -> AP, -1 without ground truth)."""

    metrics: dict[str, float]
    per_category: dict[int, float]


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


def _per_category(precision: np.ndarray, category_ids: Iterable[int]) -> dict[int, float]:
    """AP of each category from a ``T×R×K×A(×M)`` precision array (area ``all``; -1 where it has no ground truth)."""
    per_cat = precision.reshape(*precision.shape[:4], -1)[:, :, :, 0, -1]
    out = {}
    for k, cid in enumerate(category_ids):
        values = per_cat[:, :, k]
        values = values[values > -1]
        out[int(cid)] = float(values.mean()) if values.size else -1.0
    return out


def _lvis_api(gt_json_path: str, results: list[dict[str, Any]], iou_type: str) -> LvisEvaluation:
    from lvis import LVIS, LVISEval, LVISResults

    with _numpy_float_alias():
        gt = LVIS(gt_json_path)
        evaluator = LVISEval(gt, LVISResults(gt, results, max_dets=MAX_DETS), iou_type)
        evaluator.run()
    metrics = {k: float(evaluator.results[k]) for k in METRICS}
    return LvisEvaluation(metrics, _per_category(evaluator.eval["precision"], evaluator.params.cat_ids))


def _faster_coco_eval(gt_json_path: str, results: list[dict[str, Any]], iou_type: str) -> LvisEvaluation:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(gt_json_path)
    evaluator = COCOeval_faster(gt, gt.loadRes(results), iou_type, lvis_style=True, print_function=log.debug)
    evaluator.params.maxDets = [MAX_DETS]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats_as_dict
    metrics = {k: float(stats[_FAST_KEYS[k]]) for k in METRICS}
    return LvisEvaluation(metrics, _per_category(evaluator.eval["precision"], evaluator.params.catIds))


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
    return evaluate_lvis_detailed(gt_json_path, results, iou_type, backend).metrics


def evaluate_lvis_detailed(
    gt_json_path: str | os.PathLike,
    results: Iterable[dict[str, Any]],
    iou_type: Literal["bbox", "segm"],
    backend: Literal["fast", "lvis"] = "fast",
) -> LvisEvaluation:
    """:func:`evaluate_lvis` plus each category's AP (IoU 0.5:0.95, all areas)."""
    dets = [dict(d) for d in top_detections(results)]  # the APIs add keys to each dict; nested values are only read
    if not dets:
        return LvisEvaluation(dict.fromkeys(METRICS, -1.0), {})
    evaluate = _lvis_api if backend == "lvis" else _faster_coco_eval
    return evaluate(str(gt_json_path), dets, iou_type)
