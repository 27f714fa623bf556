"""The metrics of a results json, as the ``evaluate`` stage stores them (``metrics.json``) and the
``evaluate-results`` command writes them for the results of any detector: per IoU type the LVIS (or COCO) metrics
and each category's AP, and a printable table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from ..errors import InputError
from ..formats import check_results, read_results
from .coco_metrics import evaluate_coco_detailed
from .lvis_metrics import METRICS, evaluate_lvis_detailed

IouType = Literal["bbox", "segm"]
Backend = Literal["fast", "lvis", "pycocotools"]
# ground-truth format -> the reference backend of that format
REFERENCE = {"lvis": "lvis", "coco": "pycocotools"}


def metrics_record(
    gt_json_path: str | os.PathLike,
    results: list[dict[str, Any]],
    iou_types: Sequence[IouType],
    backend: Backend,
    dataset_format: Literal["lvis", "coco"] = "lvis",
) -> dict[str, Any]:
    """``{iou_type: {metric: value}, f"{iou_type}_per_category": {category id: AP}}`` for every IoU type. Malformed
    results (:func:`~divergen_lib.formats.check_results`) and a missing ground truth are refused before any IoU type
    is evaluated; the results' ids are checked against the ground truth once a backend has read it."""
    if backend not in ("fast", REFERENCE[dataset_format]):
        raise InputError(
            f"backend {backend!r} does not evaluate {dataset_format} (use fast or {REFERENCE[dataset_format]})"
        )
    if not os.path.isfile(gt_json_path):
        raise InputError(f"{gt_json_path}: ground truth not found")
    check_results(results, "segm" if "segm" in iou_types else "bbox")
    record: dict[str, Any] = {}
    for iou_type in iou_types:
        if dataset_format == "coco":
            evaluation = evaluate_coco_detailed(
                gt_json_path, results, iou_type, "fast" if backend == "fast" else "pycocotools"
            )
        else:
            evaluation = evaluate_lvis_detailed(
                gt_json_path, results, iou_type, "fast" if backend == "fast" else "lvis"
            )
        record[iou_type] = evaluation.metrics
        record[f"{iou_type}_per_category"] = {str(k): v for k, v in evaluation.per_category.items()}
    return record


def evaluate_results_file(
    gt_json_path: str | os.PathLike,
    results_path: str | os.PathLike,
    iou_types: Sequence[IouType] = ("bbox", "segm"),
    backend: Backend = "fast",
    dataset_format: Literal["lvis", "coco"] = "lvis",
) -> dict[str, Any]:
    """The metrics of a results json (this project's, detectron2's ``lvis_instances_results.json`` or
    ``coco_instances_results.json``, ...) against LVIS- or COCO-format ground truth, with where they came from."""
    record = {"ground_truth": str(gt_json_path), "format": dataset_format, "results": str(results_path)}
    record["backend"] = backend
    return record | metrics_record(gt_json_path, read_results(results_path), iou_types, backend, dataset_format)


def metrics_table(record: dict[str, Any]) -> str:
    """The metrics of a record in percent, one row per IoU type (``-`` where a metric has nothing to average,
    e.g. APr without rare categories)."""
    iou_types = [k for k in ("bbox", "segm") if k in record]
    names = list(record[iou_types[0]]) if iou_types else list(METRICS)
    width = max(len(m) for m in names) + 1
    lines = ["iou  " + "".join(m.rjust(width + 2) for m in names)]
    for iou_type in iou_types:
        values = record[iou_type]
        cells = [f"{100 * values[m]:.2f}" if values[m] >= 0 else "-" for m in names]
        lines.append(iou_type.ljust(5) + "".join(c.rjust(width + 2) for c in cells))
    return "\n".join(lines)
