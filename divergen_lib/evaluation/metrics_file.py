"""The metrics of a results json, as the ``evaluate`` stage stores them (``metrics.json``) and the
``evaluate-results`` command writes them for the results of any detector: per IoU type the LVIS (or COCO) metrics
and each category's AP, and a printable table."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, Literal

from ..errors import InputError
from ..formats import check_results, read_json, read_results
from ..formats.detections import Detections, gc_paused
from .coco_metrics import evaluate_coco_detailed
from .lvis_metrics import METRICS, evaluate_lvis_detailed
from .parallel import read_results_columns

IouType = Literal["bbox", "segm"]
Backend = Literal["fast", "lvis", "pycocotools"]
# ground-truth format -> the reference backend of that format
REFERENCE = {"lvis": "lvis", "coco": "pycocotools"}


def _check_inputs(gt_json_path: str | os.PathLike, backend: Backend, dataset_format: str) -> None:
    if backend not in ("fast", REFERENCE[dataset_format]):
        raise InputError(
            f"backend {backend!r} does not evaluate {dataset_format} (use fast or {REFERENCE[dataset_format]})"
        )
    if not os.path.isfile(gt_json_path):
        raise InputError(f"{gt_json_path}: ground truth not found")


def metrics_record(
    gt_json_path: str | os.PathLike,
    results: list[dict[str, Any]] | Detections,
    iou_types: Sequence[IouType],
    backend: Backend,
    dataset_format: Literal["lvis", "coco"] = "lvis",
    workers: int = 1,
) -> dict[str, Any]:
    """``{iou_type: {metric: value}, f"{iou_type}_per_category": {category id: AP}}`` for every IoU type. Malformed
    results (:func:`~divergen_lib.formats.check_results`) and a missing ground truth are refused before any IoU type
    is evaluated; the results' ids are checked against the ground truth once a backend has read it. ``workers``:
    processes of the fast LVIS backend (:mod:`.lvis_shards`)."""
    _check_inputs(gt_json_path, backend, dataset_format)
    with_masks = "segm" in iou_types
    fast_lvis = dataset_format == "lvis" and backend == "fast"
    if fast_lvis and isinstance(results, list):
        results = Detections.from_results(results, with_masks)  # checks each entry as check_results does
    elif isinstance(results, list):
        check_results(results, "segm" if with_masks else "bbox")
    # millions of acyclic objects (ground truth, per-task dicts): no collection walks them all (the reference APIs
    # run as their users run them)
    with gc_paused() if fast_lvis else contextlib.nullcontext():
        gt: str | os.PathLike | dict[str, Any] = read_json(gt_json_path) if fast_lvis and len(results) else gt_json_path
        record: dict[str, Any] = {}
        for iou_type in iou_types:
            if dataset_format == "coco":
                given = results.to_results(with_masks) if isinstance(results, Detections) else results
                evaluation = evaluate_coco_detailed(gt_json_path, given, iou_type, backend)  # type: ignore[arg-type]
            else:
                evaluation = evaluate_lvis_detailed(gt, results, iou_type, backend, workers)  # type: ignore[arg-type]
            record[iou_type] = evaluation.metrics
            record[f"{iou_type}_per_category"] = {str(k): v for k, v in evaluation.per_category.items()}
    return record


def evaluate_results_file(
    gt_json_path: str | os.PathLike,
    results_path: str | os.PathLike,
    iou_types: Sequence[IouType] = ("bbox", "segm"),
    backend: Backend = "fast",
    dataset_format: Literal["lvis", "coco"] = "lvis",
    workers: int = 1,
) -> dict[str, Any]:
    """The metrics of a results json (this project's, detectron2's ``lvis_instances_results.json`` or
    ``coco_instances_results.json``, ...) against LVIS- or COCO-format ground truth, with where they came from.
    The fast LVIS backend reads the file entry by entry into columns (:func:`~divergen_lib.formats.detections.
    read_detections`, by ``workers`` processes), so a results file of LVIS val size is never held as Python dicts."""
    record = {"ground_truth": str(gt_json_path), "format": dataset_format, "results": str(results_path)}
    record["backend"] = backend
    _check_inputs(gt_json_path, backend, dataset_format)
    if dataset_format == "lvis" and backend == "fast":
        results: list[dict[str, Any]] | Detections = read_results_columns(results_path, "segm" in iou_types, workers)
    else:
        results = read_results(results_path)
    return record | metrics_record(gt_json_path, results, iou_types, backend, dataset_format, workers)


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
