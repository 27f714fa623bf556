"""Parameters of the generation stage (the ``generation`` section of a params file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import check_name, check_named_list
from ..prompts import PromptConfig
from .base import ModelConfig


@dataclass(frozen=True)
class GenerationReport:
    """Figures only: how many categories the sample grid shows."""

    figure_categories: int = 6


@dataclass(frozen=True)
class CategorySelection:
    """Where the categories to generate come from (the ``generation.categories`` section).

    ``toyworld``: a built toy world — its categories, plus its extra kinds when ``include_extra``.
    ``metadata``: an LVIS json or category-info list of the target categories; ``imagenet_extras`` > 0 adds
    that many ImageNet-1K classes whose WordNet path similarity to every target is at most ``extra_threshold``
    (DiverGen: 250 at 0.4). ``ids`` restricts either to a subset.
    """

    toyworld: Path | None = None
    metadata: Path | None = None
    include_extra: bool = True
    imagenet_extras: int = 0
    extra_threshold: float = 0.4
    ids: list[int] | None = None

    def __post_init__(self) -> None:
        if (self.toyworld is None) == (self.metadata is None):
            raise ValueError("give exactly one of categories.toyworld and categories.metadata")
        if self.imagenet_extras and self.toyworld is not None:
            raise ValueError("imagenet_extras needs categories.metadata with WordNet synsets (not the toy world)")


@dataclass(frozen=True)
class ExternalSource:
    """A folder of images brought in as a generation source (X-Paste's web-retrieved instances, or any other).

    ``name`` becomes the rows' ``model`` and names their folder, so it must differ from every generator's.
    Without ``listing`` the images are ``<folder>/<category>/<file>``; a ``listing`` is a csv with the header
    ``file,category`` or a json list of ``{"file": ..., "category": ...}``, files relative to ``folder``. A category
    is a category id or name of the generation's categories.
    """

    name: str
    folder: Path
    listing: Path | None = None

    def __post_init__(self) -> None:
        check_name("external source", self.name)


@dataclass(frozen=True)
class GenerationConfig:
    """The ``generation`` section of a params file. ``max_images`` bounds what one run plans (all models and
    categories; the paper profile plans about 3 million), so a mistyped count fails in one line. ``models`` may be
    empty when ``external`` sources bring the images in."""

    categories: CategorySelection
    models: list[ModelConfig] = field(default_factory=list)
    external: list[ExternalSource] = field(default_factory=list)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    images_per_category: int = 8
    max_images: int = 10_000_000
    report: GenerationReport = field(default_factory=GenerationReport)

    def __post_init__(self) -> None:
        if not self.models and not self.external:
            raise ValueError("generation.models and generation.external are both empty: nothing to make or bring in")
        for key, items in (("generation.models", self.models), ("generation.external", self.external)):
            if items:
                check_named_list(key, items)
        clash = sorted({m.name for m in self.models} & {e.name for e in self.external})
        if clash:
            raise ValueError(f"generation.external: {clash} are generation.models names too (each name is a folder)")
        if self.images_per_category < 1:
            raise ValueError("images_per_category must be >= 1")
