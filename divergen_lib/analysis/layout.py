"""The files of an analysis stage folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AnalysisLayout:
    """``metrics.json`` (every set against real val) and ``embeddings/`` (the cached ``.npz`` embeddings, named by
    the digest of the settings that made them)."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"
