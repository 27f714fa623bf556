"""The files of a filtration stage folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FiltrationLayout:
    """``manifest.jsonl`` (every instance's scores, ``keep`` and the reason for a drop), ``pool.json`` (the merged
    instance pool) and ``pool_<generator>.json`` (one per generator), whose entries are RGBA crops under
    ``pool/images/<0-based category index>/``, relative to the pool json's folder; ``real_means.jsonl`` (each
    category's real mean) and the per-chunk sums it adds up."""

    root: Path

    @property
    def real_means(self) -> Path:
        return self.root / "real_means.jsonl"

    def real_means_part(self, digest: str, chunk_images: int, index: int) -> Path:
        """The per-category sums of real-image chunk ``index`` (chunks of ``chunk_images``), made by settings
        ``digest``."""
        return self.root / "shards" / "real_means" / f"{digest}-{chunk_images}-{index:05d}.npz"

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
