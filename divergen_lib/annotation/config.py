"""Parameters of the annotation stage (the ``annotation`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_named_list
from .base import AnnotatorConfig
from .postprocess import PostprocessConfig


@dataclass(frozen=True)
class AnnotationReport:
    """Figures only: overlays of a sample of masks, and the worst masks by IoU."""

    overlay_samples: int = 12
    worst_cases: int = 6


@dataclass(frozen=True)
class AnnotationConfig:
    """The ``annotation`` section of a params file."""

    methods: list[AnnotatorConfig]
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    generation_dir: Path | None = None
    report: AnnotationReport = field(default_factory=AnnotationReport)

    def __post_init__(self) -> None:
        check_named_list("annotation.methods", self.methods)
