"""Parameters of the evaluation stage (the ``evaluation`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class EnergySettings:
    """Free energy ``E = -tau * logsumexp(logits / tau)`` of the classifier on ground-truth boxes (DiverGen A.1:
    ``tau = 0.9``), on at most ``max_images`` train and val images each (the same images for every run)."""

    enabled: bool = True
    tau: float = 0.9
    max_images: int = 200

    def __post_init__(self) -> None:
        if self.tau <= 0 or self.max_images < 1:
            raise ValueError("energy.tau must be > 0 and energy.max_images >= 1")


@dataclass(frozen=True)
class EvaluationReport:
    """Tables and figures only: ``paper_table`` shows the papers' published numbers beside ours; ``examples``:
    val images in the qualitative figure."""

    paper_table: bool = False
    examples: int = 4


@dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluation`` section. Every finished run under ``<output_dir>/training`` is evaluated (or only
    ``runs``) on its own val split with its own test settings; ``backend`` ``fast`` is faster-coco-eval's LVIS
    mode on shards of categories in ``workers`` processes (default: the cores available; the numbers do not depend
    on it), ``lvis`` the lvis-api (they agree to 1e-9)."""

    runs: list[str] | None = None
    backend: Literal["fast", "lvis"] = "fast"
    workers: int | None = None
    iou_types: tuple[Literal["bbox", "segm"], ...] = ("bbox", "segm")
    energy: EnergySettings = field(default_factory=EnergySettings)
    report: EvaluationReport = field(default_factory=EvaluationReport)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1 (leave it out to use the cores available)")
        if not self.iou_types:
            raise ValueError("iou_types is empty")
        if self.runs is not None and not self.runs:
            raise ValueError("runs is empty (leave it out to evaluate every finished run)")
