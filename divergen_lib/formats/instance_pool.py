"""The instance-pool json of DiverGen / X-Paste (``INPUT.INST_POOL_PATH``), the training-time paste source.

``{"<0-based category index>": ["*pool/images/3/0.png", "img.png|mask.png", "/abs/raw_rgba.png", ...]}``

* ``*path``: a preprocessed RGBA crop (alpha binarised, largest component, tight box);
* ``image|mask``: an image and its mask, preprocessed at load time;
* plain ``path``: a raw RGBA file, preprocessed at load time.

Relative paths are relative to the pool json's folder (:func:`resolve_pool_paths`; the filtration stage writes
them so). DiverGen's and X-Paste's own loaders open paths as given: for them, write the resolved pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .atomic import read_json, write_json
from .errors import FormatError

PREPROCESSED_MARK = "*"
PAIR_SEPARATOR = "|"


@dataclass(frozen=True)
class PoolEntry:
    """One instance of the pool: an image path, an optional mask path, and whether it is a ready crop."""

    path: str
    mask_path: str | None = None
    preprocessed: bool = False

    def __post_init__(self) -> None:
        if not self.path or (self.mask_path is not None and not self.mask_path):
            raise FormatError(f"pool entry {self} has an empty path")
        if self.preprocessed and self.mask_path is not None:
            raise FormatError(f"pool entry {self}: a preprocessed '*' crop carries its mask in alpha, not a pair")

    @classmethod
    def parse(cls, text: str) -> PoolEntry:
        """Parse one pool string (``*path``, ``image|mask`` or ``path``)."""
        if not isinstance(text, str):
            raise FormatError(f"pool entries must be strings, got {text!r}")
        preprocessed = text.startswith(PREPROCESSED_MARK)
        body = text[len(PREPROCESSED_MARK) :] if preprocessed else text
        if PAIR_SEPARATOR in body:
            parts = body.split(PAIR_SEPARATOR)
            if len(parts) != 2:
                raise FormatError(f"pool entry {text!r}: expected 'image|mask'")
            return cls(parts[0], parts[1], preprocessed)
        return cls(body, None, preprocessed)

    def __str__(self) -> str:
        body = self.path if self.mask_path is None else f"{self.path}{PAIR_SEPARATOR}{self.mask_path}"
        return (PREPROCESSED_MARK if self.preprocessed else "") + body

    def with_prefix_replaced(self, old: str, new: str) -> PoolEntry:
        """Same entry with a leading path prefix ``old`` replaced by ``new`` (for moved pools)."""

        def swap(p: str) -> str:
            return new + p[len(old) :] if p.startswith(old) else p

        mask = None if self.mask_path is None else swap(self.mask_path)
        return PoolEntry(swap(self.path), mask, self.preprocessed)


InstancePool = dict[int, list[PoolEntry]]


def read_instance_pool(path: str | os.PathLike) -> InstancePool:
    """Read a pool json into ``{0-based category index: [PoolEntry, ...]}``; malformed input raises FormatError."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise FormatError(f"{path}: an instance pool is a JSON object of category index -> list of paths")
    pool: InstancePool = {}
    for key, values in raw.items():
        if not (isinstance(key, str) and key.isdigit()):
            raise FormatError(f"{path}: key {key!r} is not a 0-based category index")
        if not isinstance(values, list):
            raise FormatError(f"{path}: category {key} must map to a list of paths")
        try:
            pool[int(key)] = [PoolEntry.parse(v) for v in values]
        except FormatError as err:
            raise FormatError(f"{path}: category {key}: {err}") from None
    return dict(sorted(pool.items()))


def write_instance_pool(pool: InstancePool, path: str | os.PathLike) -> None:
    """Write a pool json atomically, categories in index order (key = index as a string)."""
    for key in pool:
        if not isinstance(key, int) or key < 0:
            raise FormatError(f"{path}: pool keys must be 0-based category indices, got {key!r}")
    write_json({str(k): [str(e) for e in pool[k]] for k in sorted(pool)}, path)


def merge_instance_pools(*pools: InstancePool, replace_prefix: dict[str, str] | None = None) -> InstancePool:
    """Concatenate pools per category (in argument order), optionally rewriting path prefixes."""
    merged: InstancePool = {}
    for pool in pools:
        for key, entries in pool.items():
            for entry in entries:
                for old, new in (replace_prefix or {}).items():
                    entry = entry.with_prefix_replaced(old, new)
                merged.setdefault(key, []).append(entry)
    return dict(sorted(merged.items()))


def resolve_pool_paths(pool: InstancePool, base: str | os.PathLike) -> InstancePool:
    """Make relative entry paths absolute against ``base`` (the pool json's folder)."""
    base = Path(base).resolve()

    def absolute(p: str) -> str:
        return str(base / p) if not os.path.isabs(p) else p

    def resolved(e: PoolEntry) -> PoolEntry:
        return PoolEntry(absolute(e.path), None if e.mask_path is None else absolute(e.mask_path), e.preprocessed)

    return {k: [resolved(e) for e in v] for k, v in pool.items()}
