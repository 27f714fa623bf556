"""The files of an ablation stage folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AblationLayout:
    """``summary.json`` (per-run metrics, per-setting mean ± std, claims), ``report.md`` (the same as Markdown),
    ``data/<stage>-<digest>/`` (each variant's stage folders), ``runs/<setting>-s<seed>/`` (training runs) and
    ``embeddings/`` (cached real-instance embeddings for coverage)."""

    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"
