"""The files of a generation stage folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..formats import read_manifest


@dataclass(frozen=True)
class GenerationLayout:
    """``manifest.jsonl`` (one row per image: ``status``, ``path``, ``mask_path`` relative to :attr:`root`),
    ``categories.json`` (the categories generated for, targets then extras), ``prompts.jsonl``, and the PNGs under
    ``images/<model>/<category id>/`` (toy generator masks under ``masks/``; an external source's images under
    ``images/<source>/<category id>/``)."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def categories(self) -> Path:
        return self.root / "categories.json"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts.jsonl"

    @staticmethod
    def image_relpath(model: str, category_id: int, sample: str, kind: str = "images") -> str:
        """``<kind>/<model>/<category id>/<sample>.png``, relative to the stage folder (``kind``: images or masks)."""
        return f"{kind}/{model}/{category_id:05d}/{sample}.png"

    def ok_rows(self) -> list[dict[str, Any]]:
        """The successfully generated images (a missing manifest: the stage has not run)."""
        if not self.manifest.is_file():
            raise ConfigError(f"{self.manifest}: no generation manifest (run the generation stage first)")
        return [r for r in read_manifest(self.manifest) if r.get("status") == "ok"]
