"""The metrics of a results json, as the ``evaluate`` stage stores them (``metrics.json``) and the
``evaluate-results`` command writes them for the results of any detector: per IoU type the LVIS metrics and each
category's AP, and a printable table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from ..formats import read_results
from .lvis_metrics import METRICS, evaluate_lvis_detailed

IouType = Literal["bbox", "segm"]


def metrics_record(
    gt_json_path: str | os.PathLike,
    results: list[dict[str, Any]],
    iou_types: Sequence[IouType],
    backend: Literal["fast", "lvis"],
) -> dict[str, Any]:
    """``{iou_type: {metric: value}, f"{iou_type}_per_category": {category id: AP}}`` for every IoU type."""
    record: dict[str, Any] = {}
    for iou_type in iou_types:
        evaluation = evaluate_lvis_detailed(gt_json_path, results, iou_type, backend)
        record[iou_type] = evaluation.metrics
        record[f"{iou_type}_per_category"] = {str(k): v for k, v in evaluation.per_category.items()}
    return record


def evaluate_results_file(
    gt_json_path: str | os.PathLike,
    results_path: str | os.PathLike,
    iou_types: Sequence[IouType] = ("bbox", "segm"),
    backend: Literal["fast", "lvis"] = "fast",
) -> dict[str, Any]:
    """The metrics of an LVIS results json (this project's, detectron2's ``lvis_instances_results.json``, ...)
    against LVIS-format ground truth, with where they came from."""
    record = {"ground_truth": str(gt_json_path), "results": str(results_path), "backend": backend}
    return record | metrics_record(gt_json_path, read_results(results_path), iou_types, backend)


def metrics_table(record: dict[str, Any]) -> str:
    """The LVIS metrics of a record in percent, one row per IoU type (``-`` where a metric has nothing to
    average, e.g. APr without rare categories)."""
    iou_types = [k for k in ("bbox", "segm") if k in record]
    width = max(len(m) for m in METRICS) + 1
    lines = ["iou  " + "".join(m.rjust(width + 2) for m in METRICS)]
    for iou_type in iou_types:
        values = record[iou_type]
        cells = [f"{100 * values[m]:.2f}" if values[m] >= 0 else "-" for m in METRICS]
        lines.append(iou_type.ljust(5) + "".join(c.rjust(width + 2) for c in cells))
    return "\n".join(lines)
