"""The files of an annotation stage folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AnnotationLayout:
    """``manifest.jsonl``: one row per (method, generated image) with its status and COCO RLE mask."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"
