"""The files the evaluation stage writes: into each training run's folder, beside its checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvaluationLayout:
    """In a run folder (``<output_dir>/training/<run>/``): ``results_val.json`` (LVIS results of the evaluation
    checkpoint), ``metrics.json`` (LVIS AP per IoU type and per category), ``energy.json`` (free energies on
    ground-truth boxes of train and val images, and the train-val gap) and ``predict/`` (notebook 06's pictures of
    the run's detections on chosen images)."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results_val.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def energy(self) -> Path:
        return self.root / "energy.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predict"
