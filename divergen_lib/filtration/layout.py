"""The files of a filtration stage folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FiltrationLayout:
    """``manifest.jsonl`` (every instance's scores, ``keep`` and the reason for a drop), ``pool.json`` (the merged
    instance pool) and ``pool_<generator>.json`` (one per generator), whose entries are RGBA crops under
    ``pool/images/<0-based category index>/``, relative to the pool json's folder."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def pool(self) -> Path:
        return self.root / "pool.json"

    def model_pool(self, model: str) -> Path:
        """The pool of one generator's kept instances."""
        return self.root / f"pool_{model}.json"

    @staticmethod
    def crop_relpath(category_index: int, annotation_id: str) -> str:
        """A pool crop's path relative to :attr:`root` (and to the pool jsons beside it)."""
        return f"pool/images/{category_index}/{annotation_id}.png"
