"""Parameters of the filtration stage (the ``filtration`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..clip_choice import ClipChoice, ToyClipConfig
from ..config import ConfigError, DatasetSplit, check_name, check_named_list


@dataclass(frozen=True)
class ClipScoreFilter:
    """X-Paste's CLIP score rule (paper values 21 / 1 / 0.05 / 0.95), applied to ``all`` instances, only to
    categories ``without_real`` training instances (DiverGen's extras), or ``none``. The masked instance is
    composited on ``background`` (X-Paste: white) and compared with ``template``: X-Paste's ``reseg.py`` scores against
    ``a photo of {name}`` (the ``xpaste`` profile); the default is the text the toy CLIP is trained with."""

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
class PoolQuota:
    """One part of the pool: at most ``max_instances`` of the instances that pass the filters and come from
    ``generators`` (generation models or external sources, by name; all when left out) of ``kind``."""

    name: str
    max_instances: int
    generators: list[str] | None = None
    kind: Literal["generated", "external", "any"] = "any"

    def __post_init__(self) -> None:
        check_name("pool quota", self.name)
        if self.max_instances < 0:
            raise ValueError(f"pool quota {self.name}: max_instances must be >= 0")
        if self.generators is not None and not self.generators:
            raise ValueError(f"pool quota {self.name}: generators is empty (leave it out for all)")


@dataclass(frozen=True)
class PoolComposition:
    """The ``filtration.pool`` section: which of the instances that pass the filters enter the pool (all, by
    default). ``quotas`` (X-Paste: 150k generated + 150k retrieved), ``max_per_category`` and ``max_instances``
    (DiverGen's 300k / 600k / 1200k) each keep a deterministic random subsample; ``seed`` defaults to the profile's
    (see :mod:`.composition`)."""

    quotas: list[PoolQuota] = field(default_factory=list)
    max_per_category: int | None = None
    max_instances: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.quotas:
            check_named_list("filtration.pool.quotas", self.quotas)
        for key in ("max_per_category", "max_instances"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"filtration.pool.{key} must be >= 1 (leave it out for no cap)")


@dataclass(frozen=True)
class FiltrationReport:
    """Figures only: instances per threshold gallery."""

    gallery: int = 8


@dataclass(frozen=True)
class FiltrationConfig:
    """The ``filtration`` section. ``methods``: the annotation methods whose masks are filtered (all by default);
    with several, ``fusion: max_clip`` keeps each generated image's best mask by CLIP score (X-Paste), since without
    fusion an image would enter the pool once per method."""

    real: DatasetSplit  # where the real training instances are
    clip: ClipChoice = field(default_factory=ClipChoice)
    toy_clip: ToyClipConfig = field(default_factory=ToyClipConfig)
    clip_score: ClipScoreFilter = field(default_factory=ClipScoreFilter)
    inter_similarity: InterSimilarityFilter = field(default_factory=InterSimilarityFilter)
    methods: list[str] | None = None
    fusion: Literal["none", "max_clip"] = "none"
    pool: PoolComposition = field(default_factory=PoolComposition)
    annotation_dir: Path | None = None
    generation_dir: Path | None = None
    batch_size: int = 32
    num_workers: int = 2  # DataLoader workers reading, cropping and preprocessing the real images (0: main process)
    report: FiltrationReport = field(default_factory=FiltrationReport)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("filtration.batch_size must be >= 1")
        if self.num_workers < 0:
            raise ConfigError("filtration.num_workers must be >= 0")
