"""Parameters of the ablation stage (the ``ablation`` section of a params file).

The same params file carries full ``generation``, ``annotation``, ``filtration``, ``training`` and ``evaluation``
sections: the shared settings of every variant. A setting's :class:`DataVariant` only says what it takes away
from them, so no setting has settings of its own to tune.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import check_name, check_named_list


@dataclass(frozen=True)
class DataVariant:
    """The generated data of a setting, relative to the params file's sections (defaults: all of DiverGen's
    diversity at 1x). ``scale`` multiplies ``generation.images_per_category`` (images per category over all the
    variant's ``models``; all of them when left out); ``include_extra``: category diversity;
    ``attribute_prompts``: prompt diversity (else the template prompt only); ``annotation``: the method of
    ``annotation.methods`` to use (default the first), or ``max_clip``: two or more of them whose masks are fused by
    max CLIP (X-Paste; DiverGen's annotation ablation compares it with SAM); ``filtration``: ``divergen`` is the
    ``filtration`` section as given, ``clip_score`` X-Paste's CLIP score rule for every category, ``none`` keeps every
    mask."""

    scale: int = 1
    include_extra: bool = True
    attribute_prompts: bool = True
    models: list[str] | None = None
    annotation: str | None = None
    max_clip: list[str] | None = None
    filtration: Literal["divergen", "clip_score", "none"] = "divergen"

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError("scale must be >= 1")
        if self.models is not None and not self.models:
            raise ValueError("models is empty (leave it out to use every model of the generation section)")
        if self.max_clip is not None and (len(self.max_clip) < 2 or self.annotation is not None):
            raise ValueError("max_clip fuses two or more annotation methods, and takes the place of annotation")


@dataclass(frozen=True)
class Setting:
    """One row of the ablation table: ``name`` names its runs' folders, ``label`` the row; without ``data`` the
    setting trains on real data only (the baseline)."""

    name: str
    label: str
    data: DataVariant | None = None

    def __post_init__(self) -> None:
        check_name("setting", self.name)


@dataclass(frozen=True)
class Claim:
    """A claim of the papers read as "setting ``better`` beats setting ``worse``"."""

    text: str
    better: str
    worse: str


@dataclass(frozen=True)
class CoverageSettings:
    """How the data of each setting is compared with real val (notebook 01's metrics, on the toy CLIP)."""

    k: int = 5
    max_real: int | None = 2000
    crop_padding: int = 4


@dataclass(frozen=True)
class AblationReport:
    """Reporting only: a file (e.g. ``README.md``) whose block between the ablation-table markers is rewritten."""

    readme: Path | None = None


@dataclass(frozen=True)
class AblationConfig:
    """The ``ablation`` section: the settings, the seeds every setting is trained with, how many runs train at
    once (each on ``cores // workers`` threads), the claims to check, and the README to write the table into."""

    settings: list[Setting]
    claims: list[Claim] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 1
    coverage: CoverageSettings = field(default_factory=CoverageSettings)
    report: AblationReport = field(default_factory=AblationReport)

    def __post_init__(self) -> None:
        check_named_list("ablation.settings", self.settings)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        names = {s.name for s in self.settings}
        for claim in self.claims:
            unknown = {claim.better, claim.worse} - names
            if unknown:
                raise ValueError(f"claim {claim.text!r} names unknown settings {sorted(unknown)}")
