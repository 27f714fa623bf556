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
    """Figures only: the 2-D map's method, the points per set it is fitted on (a stratified sample: every
    rare-category point while they fit, the rest spread evenly over categories), the principal components it
    starts from (null: the embeddings as they are), the threads (null: every core), whether every other point is
    then placed into the map (``map_all``, openTSNE), and how many rare categories get their own panel."""

    map_method: Literal["opentsne", "sklearn", "umap"] = "opentsne"
    map_points_per_set: int = 600
    map_pca_dims: int | None = 50
    map_jobs: int | None = None
    map_all: bool = False
    rare_panels: int = 3

    def __post_init__(self) -> None:
        if self.map_all and self.map_method != "opentsne":
            raise ValueError(
                f"map_all places points with openTSNE's transform: map_method must be opentsne, not {self.map_method!r}"
            )
        if self.map_points_per_set < 5:
            raise ValueError("map_points_per_set must be >= 5")


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
