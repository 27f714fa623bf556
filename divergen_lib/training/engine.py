"""The contract of a training engine, and of the detector it gives back for prediction.

An engine is an object registered in :data:`.engines.ENGINES` under its ``name``; ``training.engine`` in params
chooses one. Its module must import no torch or engine library when it is imported (params loading and preflight
use it); ``train`` and ``load_detector`` import what they need when called. Every engine writes a run in the same
formats (:class:`~.layout.RunLayout`: ``loss.jsonl`` rows of :mod:`.loss_log`, ``model_final.pth`` a dict with
``engine``, ``model``, ``classes`` and optionally ``model_ema``), so truncation, evaluation and the notebooks treat
every engine alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..preflight import Check
    from .classes import ClassMap
    from .config import TrainingConfig
    from .layout import RunLayout
    from .run import RunInputs, RunOutput


class Detector(Protocol):
    """A trained run as evaluation uses it."""

    classes: ClassMap

    def predict(self, images: list[dict[str, Any]], image_root: str | os.PathLike) -> list[dict[str, Any]]:
        """LVIS results of ``images`` (dataset category ids, at most the run's ``test.max_detections`` each)."""
        ...

    def box_logits(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Foreground class logits (N×C) of the box head at ``boxes_xyxy`` of ``image``."""
        ...


@dataclass(frozen=True)
class ClassLayer:
    """A class-dependent parameter of the engine's models, for truncation: its name ``pattern``, rows per class
    and whether it has a background row."""

    pattern: re.Pattern[str]
    rows_per_class: int
    background: bool


class Engine(Protocol):
    """What the training stage, evaluation, truncation and preflight need of an engine."""

    @property
    def name(self) -> str:
        """The value of ``training.engine`` that selects this engine."""
        ...

    @property
    def background_first(self) -> bool:
        """Whether the background is class row 0 (torchvision) rather than the last row (detectron2)."""
        ...

    @property
    def class_layers(self) -> tuple[ClassLayer, ...]:
        """The class-dependent parameters of its state dicts."""
        ...

    def describe(self, cfg: TrainingConfig) -> str:
        """The detector ``cfg`` trains, in a few words (tables name it beside the metrics)."""
        ...

    def validate(self, cfg: TrainingConfig) -> None:
        """Raise ValueError for settings this engine cannot train with (called when params are loaded)."""
        ...

    def required_inputs(self, cfg: TrainingConfig) -> Iterator[Check]:
        """Packages, weights and files the engine needs beyond the datasets and pools (preflight)."""
        ...

    def train(self, cfg: TrainingConfig, inputs: RunInputs, run: RunLayout, device: str) -> Path:
        """Train (or resume, or find finished) a run in ``run``; returns its ``model_final.pth``."""
        ...

    def load_detector(self, run: RunOutput, device: str) -> Detector:
        """The run's evaluation checkpoint (truncated when it had extra classes; EMA weights when present)."""
        ...
