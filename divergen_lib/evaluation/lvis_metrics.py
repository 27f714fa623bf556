"""``evaluate_lvis``: LVIS AP (federated: negative and not-exhaustive categories, 300 detections per image).

Two backends give the same numbers: ``lvis`` (the reference LVIS API; it uses ``np.float``, removed in
numpy 2, so an alias is set only around its call) and ``fast`` (faster-coco-eval's LVIS mode on shards of
categories, in one or more processes: :mod:`.lvis_shards`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..formats import MAX_DETS, check_results, read_json, top_detections
from ..formats.detections import Detections
from .lvis_shards import evaluate_shards, summarize

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


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


def _fast(gt_json: str | os.PathLike | dict[str, Any], dets: Detections, iou_type: str, workers: int) -> LvisEvaluation:
    dataset = gt_json if isinstance(gt_json, dict) else read_json(gt_json)
    check_detection_ids(dets, dataset)
    evaluation = evaluate_shards(dataset, dets, iou_type, workers)
    frequencies = {c["id"]: c.get("frequency", "") for c in dataset["categories"]}
    return LvisEvaluation(
        summarize(evaluation, frequencies), per_category_ap(evaluation.precision, evaluation.category_ids)
    )


def check_result_ids(given: list[dict[str, Any]], dataset: dict[str, Any], iou_type: str) -> None:
    """Every given detection names an image and a category of the ground truth (the first that does not is named
    by its index in what the caller gave)."""
    images = (img["id"] for img in dataset.get("images", []))
    check_results(given, iou_type, images, (c["id"] for c in dataset.get("categories", [])))


def check_detection_ids(dets: Detections, dataset: dict[str, Any]) -> None:
    """:func:`check_result_ids` for detections in columns."""
    dets.check_ids((img["id"] for img in dataset.get("images", [])), (c["id"] for c in dataset.get("categories", [])))


def evaluate_lvis(
    gt_json_path: str | os.PathLike,
    results: Iterable[dict[str, Any]],
    iou_type: Literal["bbox", "segm"],
    backend: Literal["fast", "lvis"] = "fast",
    workers: int = 1,
) -> dict[str, float]:
    """AP, AP50, AP75, APs, APm, APl, APr, APc, APf of LVIS-format ``results`` against the ground truth.

    ``results``: dicts with ``image_id``, ``category_id``, ``score``, ``bbox`` and (for ``segm``) an RLE
    ``segmentation``. A metric with nothing to average is -1, as both APIs report it.
    """
    return evaluate_lvis_detailed(gt_json_path, results, iou_type, backend, workers).metrics


def evaluate_lvis_detailed(
    gt_json: str | os.PathLike | dict[str, Any],
    results: Iterable[dict[str, Any]] | Detections,
    iou_type: Literal["bbox", "segm"],
    backend: Literal["fast", "lvis"] = "fast",
    workers: int = 1,
) -> LvisEvaluation:
    """:func:`evaluate_lvis` plus each category's AP (IoU 0.5:0.95, all areas). Malformed results raise
    FormatError naming the first bad entry (see :func:`~divergen_lib.formats.check_results`).

    ``gt_json``: the ground truth's path (or, for ``fast``, its loaded dict); ``results``: dicts or
    :class:`~divergen_lib.formats.detections.Detections` (e.g. read with ``read_detections``, which never holds
    the whole file); ``workers``: processes of the ``fast`` backend (see :mod:`.lvis_shards`)."""
    if backend == "fast":
        dets = results if isinstance(results, Detections) else Detections.from_results(results, iou_type == "segm")
        if not len(dets):
            return LvisEvaluation(dict.fromkeys(METRICS, -1.0), {})
        return _fast(gt_json, dets, iou_type, workers)
    if isinstance(gt_json, dict):
        raise ValueError("the lvis backend reads its ground truth from a file")
    given = results.to_results(iou_type == "segm") if isinstance(results, Detections) else list(results)
    check_results(given, iou_type)
    dets = [dict(d) for d in top_detections(given)]  # the API adds keys to each dict; nested values are only read
    if not dets:
        return LvisEvaluation(dict.fromkeys(METRICS, -1.0), {})
    return _lvis_api(str(gt_json), dets, iou_type, given)
