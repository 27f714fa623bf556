"""LVIS evaluation: exact (the ``lvis`` package) and fast (faster-coco-eval's LVIS mode) backends, and the
results json every engine writes."""

from .lvis_metrics import METRICS, LvisEvaluation, evaluate_lvis, evaluate_lvis_detailed, top_detections
from .results import detections_to_results, read_results, write_results

__all__ = [
    "METRICS",
    "LvisEvaluation",
    "detections_to_results",
    "evaluate_lvis",
    "evaluate_lvis_detailed",
    "read_results",
    "top_detections",
    "write_results",
]
