"""``evaluate_lvis``: LVIS AP (federated: negative and not-exhaustive categories, 300 detections per image).

Two backends give the same numbers: ``lvis`` (the reference LVIS API; it uses ``np.float``, removed in
numpy 2, so an alias is set only around its call) and ``fast`` (faster-coco-eval's LVIS mode, whose
300-detection cap is per image *and category*; detections are therefore first cut to each image's top 300
by score, which is lvis-api's rule).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..formats import MAX_DETS, check_results, top_detections

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


def per_category_ap(precision: np.ndarray, category_ids: Iterable[int]) -> dict[int, float]:
    """AP of each category from a ``T×R×K×A(×M)`` precision array (area ``all``; -1 where it has no ground truth)."""
    per_cat = precision.reshape(*precision.shape[:4], -1)[:, :, :, 0, -1]
    out = {}
    for k, cid in enumerate(category_ids):
        values = per_cat[:, :, k]
        values = values[values > -1]
        out[int(cid)] = float(values.mean()) if values.size else -1.0
    return out


def _lvis_api(
    gt_json_path: str, results: list[dict[str, Any]], iou_type: str, given: list[dict[str, Any]]
) -> LvisEvaluation:
    from lvis import LVIS, LVISEval, LVISResults

    with _numpy_float_alias():
        gt = LVIS(gt_json_path)
        check_result_ids(given, gt.dataset, iou_type)
        evaluator = LVISEval(gt, LVISResults(gt, results, max_dets=MAX_DETS), iou_type)
        evaluator.run()
    metrics = {k: float(evaluator.results[k]) for k in METRICS}
    return LvisEvaluation(metrics, per_category_ap(evaluator.eval["precision"], evaluator.params.cat_ids))


def _faster_coco_eval(
    gt_json_path: str, results: list[dict[str, Any]], iou_type: str, given: list[dict[str, Any]]
) -> LvisEvaluation:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(gt_json_path)
    check_result_ids(given, gt.dataset, iou_type)
    evaluated = _evaluated_detections(gt.dataset, results)
    if not evaluated:  # nothing to match: the reference API's numbers (it takes no time then)
        return _lvis_api(gt_json_path, results, iou_type, given)
    results = evaluated
    evaluator = COCOeval_faster(gt, gt.loadRes(results), iou_type, lvis_style=True, print_function=log.debug)
    evaluator.params.maxDets = [MAX_DETS]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats_as_dict
    metrics = {k: float(stats[_FAST_KEYS[k]]) for k in METRICS}
    return LvisEvaluation(metrics, per_category_ap(evaluator.eval["precision"], evaluator.params.catIds))


def check_result_ids(given: list[dict[str, Any]], dataset: dict[str, Any], iou_type: str) -> None:
    """Every given detection names an image and a category of the ground truth (the first that does not is named
    by its index in what the caller gave)."""
    images = (img["id"] for img in dataset.get("images", []))
    check_results(given, iou_type, images, (c["id"] for c in dataset.get("categories", [])))


def _evaluated_detections(dataset: dict[str, Any], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The detections LVIS evaluates: those whose category is annotated in their image or listed among its
    ``neg_category_ids`` (the lvis-api's ``LVISEval._prepare`` ignores every other one, after the per-image cap).

    faster-coco-eval 1.8.0 drops the others too, but only after asking for their image's size, which it records
    only for images with a kept detection or a ground-truth instance; an image holding nothing but ignored
    detections then raises ``IndexError: unordered_map::at`` in ``calculateRleForAllAnnotations`` (segm only).
    Minimal reproduction: ground truth with one image ``{"id": 1, "neg_category_ids": [], ...}`` and no
    annotation in it, one segm detection on image 1 of any category, ``COCOeval_faster(gt, gt.loadRes(dets),
    "segm", lvis_style=True).evaluate()``. Dropping them first gives the same metric and avoids the lookup."""
    positive: dict[int, set[int]] = defaultdict(set)
    for ann in dataset.get("annotations", []):
        positive[ann["image_id"]].add(ann["category_id"])
    for img in dataset.get("images", []):
        positive[img["id"]].update(img.get("neg_category_ids", []))
    return [d for d in results if d["category_id"] in positive.get(d["image_id"], ())]


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
    """:func:`evaluate_lvis` plus each category's AP (IoU 0.5:0.95, all areas). Malformed results raise
    FormatError naming the first bad entry (see :func:`~divergen_lib.formats.check_results`)."""
    given = results if isinstance(results, list) else list(results)
    check_results(given, iou_type)
    dets = [dict(d) for d in top_detections(given)]  # the APIs add keys to each dict; nested values are only read
    if not dets:
        return LvisEvaluation(dict.fromkeys(METRICS, -1.0), {})
    evaluate = _lvis_api if backend == "lvis" else _faster_coco_eval
    return evaluate(str(gt_json_path), dets, iou_type, given)
