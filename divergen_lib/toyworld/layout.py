"""The files of a built toy world (the ``toyworld`` stage folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val")


@dataclass(frozen=True)
class ToyWorldLayout:
    """``world.json`` (catalogue, written last: it marks completion), ``train.json`` / ``val.json`` (LVIS v1) with
    their images under ``train/`` and ``val/``, and ``extra_categories.json`` (kinds never shown)."""

    root: Path

    @property
    def world(self) -> Path:
        return self.root / "world.json"

    def annotations(self, split: str) -> Path:
        """The LVIS json of ``split`` (``train`` or ``val``)."""
        return self.root / f"{split}.json"

    def images(self, split: str) -> Path:
        """The folder of ``split``'s images (their ``file_name`` is relative to :attr:`root`)."""
        return self.root / split

    @property
    def extra_categories(self) -> Path:
        return self.root / "extra_categories.json"
