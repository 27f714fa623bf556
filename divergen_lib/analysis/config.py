"""Parameters of the distribution analysis (the ``analysis`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..clip_choice import ClipChoice, ToyClipConfig
from ..config import check_named_list
from ..generation.base import ModelConfig
from ..generation.config import CategorySelection
from ..prompts import PromptConfig


@dataclass(frozen=True)
class AnalysisReport:
    """Figures only: the 2-D map's method and points per set (every rare-category point is kept), and how many
    rare categories get their own panel."""

    map_method: Literal["opentsne", "sklearn", "umap"] = "opentsne"
    map_points_per_set: int = 600
    rare_panels: int = 3


@dataclass(frozen=True)
class GeneratedSet:
    """A small generated sample made with one diversity setting (prompts, generators, extra categories)."""

    name: str
    models: list[ModelConfig]
    prompts: PromptConfig = field(default_factory=PromptConfig)
    include_extra: bool = False
    images_per_category: int = 6
    batch_size: int = 1


@dataclass(frozen=True)
class AnalysisConfig:
    """The ``analysis`` section of a params file."""

    train_annotations: Path
    val_annotations: Path
    image_root: Path
    categories: CategorySelection
    generated: list[GeneratedSet]
    clip: ClipChoice = field(default_factory=ClipChoice)
    toy_clip: ToyClipConfig = field(default_factory=ToyClipConfig)
    crop_padding: int = 40
    max_real: int | None = 2000
    k: int = 5
    report: AnalysisReport = field(default_factory=AnalysisReport)

    def __post_init__(self) -> None:
        check_named_list("analysis.generated", self.generated)
