"""Parameters of the filtration stage (the ``filtration`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..clip_choice import ClipChoice, ToyClipConfig
from ..config import ConfigError, DatasetSplit


@dataclass(frozen=True)
class ClipScoreFilter:
    """X-Paste's CLIP score rule (paper values 21 / 1 / 0.05 / 0.95), applied to ``all`` instances, only to
    categories ``without_real`` training instances (DiverGen's extras), or ``none``. The masked instance is
    composited on ``background`` (X-Paste: white) and compared with ``template``."""

    apply_to: Literal["all", "without_real", "none"] = "all"
    min_clip: float = 21.0
    tolerance: float = 1.0
    min_area: float = 0.05
    max_area: float = 0.95
    background: tuple[int, int, int] = (255, 255, 255)
    template: str = "a photo of a single {name}"


@dataclass(frozen=True)
class InterSimilarityFilter:
    """DiverGen's CLIP inter-similarity to the real training instances of the category (paper threshold 0.6).

    Real crops: tight box from the mask, outside pixels replaced by a ``blur_kernel`` box blur, box padded by
    ``crop_padding`` px. Categories with no real instance cannot be judged: ``without_real: skip`` leaves them
    to the CLIP score rule (set ``clip_score.apply_to`` accordingly), ``drop`` drops them with that reason.
    """

    enabled: bool = True
    threshold: float = 0.6
    crop_padding: int = 40
    blur_kernel: int = 10
    without_real: Literal["skip", "drop"] = "skip"
    max_real_per_category: int | None = None


@dataclass(frozen=True)
class FiltrationReport:
    """Figures only: instances per threshold gallery."""

    gallery: int = 8


@dataclass(frozen=True)
class FiltrationConfig:
    """The ``filtration`` section."""

    real: DatasetSplit  # where the real training instances are
    clip: ClipChoice = field(default_factory=ClipChoice)
    toy_clip: ToyClipConfig = field(default_factory=ToyClipConfig)
    clip_score: ClipScoreFilter = field(default_factory=ClipScoreFilter)
    inter_similarity: InterSimilarityFilter = field(default_factory=InterSimilarityFilter)
    methods: list[str] | None = None
    annotation_dir: Path | None = None
    generation_dir: Path | None = None
    batch_size: int = 32
    report: FiltrationReport = field(default_factory=FiltrationReport)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("filtration.batch_size must be >= 1")
