"""LVIS evaluation: exact (the ``lvis`` package) and fast (faster-coco-eval's LVIS mode) backends (the results
json every engine writes is :mod:`divergen_lib.formats.results`)."""

from .lvis_metrics import METRICS, LvisEvaluation, evaluate_lvis, evaluate_lvis_detailed

__all__ = ["METRICS", "LvisEvaluation", "evaluate_lvis", "evaluate_lvis_detailed"]
