"""A trained run as a detector, whichever engine trained it: LVIS predictions and box-head logits."""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from ..training.classes import ClassMap
from ..training.stage import RunOutput


class Detector(Protocol):
    """What evaluation needs of a trained model."""

    classes: ClassMap

    def predict(self, images: list[dict[str, Any]], image_root: str | os.PathLike) -> list[dict[str, Any]]:
        """LVIS results of ``images`` (dataset category ids, at most the run's ``test.max_detections`` each)."""

    def box_logits(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Foreground class logits (N×C) of the box head at ``boxes_xyxy`` of ``image``."""


class TorchvisionDetector:
    """A torchvision-engine checkpoint (EMA weights when present)."""

    def __init__(self, run: RunOutput, device: str) -> None:
        from ..training import torchvision_engine

        self._engine = torchvision_engine
        self.model, self.classes = torchvision_engine.load_model(run.eval_checkpoint, device, run.config.test)
        self.test = run.config.test

    def predict(self, images: list[dict[str, Any]], image_root: str | os.PathLike) -> list[dict[str, Any]]:
        return self._engine.predict(self.model, self.classes, images, image_root, self.test)

    def box_logits(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        return self._engine.box_logits(self.model, image, boxes_xyxy)


def load_detector(run: RunOutput, device: str) -> Detector:
    """The detector of a finished run, from its evaluation checkpoint (truncated when it had extra classes)."""
    if run.config.engine == "detectron2":
        from ..training.detectron2_engine import Detectron2Detector

        return Detectron2Detector(run, device)
    return TorchvisionDetector(run, device)
