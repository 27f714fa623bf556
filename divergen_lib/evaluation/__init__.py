"""LVIS evaluation: exact (the ``lvis`` package) and fast (faster-coco-eval's LVIS mode) backends."""

from .lvis_metrics import METRICS, evaluate_lvis, top_detections

__all__ = ["METRICS", "evaluate_lvis", "top_detections"]
