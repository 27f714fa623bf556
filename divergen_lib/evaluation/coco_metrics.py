"""COCO evaluation (X-Paste reports COCO): AP, AP50, AP75, APs, APm, APl and each category's AP of COCO-format
results, ``iscrowd`` ground truth as ignore regions. Backend ``fast`` is faster-coco-eval's COCO mode,
``pycocotools`` the reference ``COCOeval``; they agree to 1e-9 (tested on randomized inputs)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterable
from typing import Any, Literal

from ..formats import check_results
from .lvis_metrics import LvisEvaluation, check_result_ids, per_category_ap

log = logging.getLogger(__name__)

COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def evaluate_coco_detailed(
    gt_json_path: str | os.PathLike,
    results: Iterable[dict[str, Any]],
    iou_type: Literal["bbox", "segm"],
    backend: Literal["fast", "pycocotools"] = "fast",
) -> LvisEvaluation:
    """COCO metrics (maxDets 100) and per-category AP (IoU 0.5:0.95, all areas; -1 without ground truth);
    malformed results raise FormatError naming the first bad entry."""
    given = results if isinstance(results, list) else list(results)
    check_results(given, iou_type)
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(gt_json_path))
    else:
        from faster_coco_eval import COCO, COCOeval_faster

        gt = COCO(str(gt_json_path))
    check_result_ids(given, gt.dataset, iou_type)
    if not given:
        return LvisEvaluation(dict.fromkeys(COCO_METRICS, -1.0), {})
    dets = [dict(d) for d in given]  # the APIs add keys to each dict
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        if backend == "pycocotools":
            evaluator = COCOeval(gt, gt.loadRes(dets), iou_type)
        else:
            evaluator = COCOeval_faster(gt, gt.loadRes(dets), iou_type, print_function=log.debug)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {k: float(v) for k, v in zip(COCO_METRICS, evaluator.stats[:6], strict=True)}
    return LvisEvaluation(metrics, per_category_ap(evaluator.eval["precision"], evaluator.params.catIds))
