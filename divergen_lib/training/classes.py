"""The classifier's classes: target categories (those of the training json) plus, optionally, extra categories
that only the generated pool has (DiverGen's category diversity), trained and then truncated away.

Class indices are 0-based and follow category id order, as the pool json's keys do, so pool index ``k`` is
class ``k`` whenever the pool and the model use the same category metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..formats import InstancePool, category_index, read_json, write_json


@dataclass(frozen=True)
class ClassMap:
    """``category_ids[i]`` is class ``i``; ``targets`` are the indices evaluated (and kept by truncation)."""

    category_ids: tuple[int, ...]
    names: tuple[str, ...]
    targets: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    @property
    def has_extras(self) -> bool:
        return len(self.targets) < self.num_classes

    def index(self) -> dict[int, int]:
        """Category id -> class index."""
        return {cid: i for i, cid in enumerate(self.category_ids)}

    def truncated(self) -> ClassMap:
        """The map after truncation: target classes only, in the same order."""
        return ClassMap(
            tuple(self.category_ids[i] for i in self.targets),
            tuple(self.names[i] for i in self.targets),
            tuple(range(len(self.targets))),
        )

    def to_json(self) -> dict[str, Any]:
        return {"category_ids": list(self.category_ids), "names": list(self.names), "targets": list(self.targets)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassMap:
        return cls(tuple(data["category_ids"]), tuple(data["names"]), tuple(data["targets"]))


def build_class_map(
    train_categories: list[dict[str, Any]],
    metadata: list[dict[str, Any]] | None,
    pool: InstancePool | None,
    extra_categories: bool,
    pool_name: str = "instance pool",
) -> ClassMap:
    """Classes for a run: the training json's categories, plus the pool's categories outside them when
    ``extra_categories`` (``metadata`` gives the pool's index -> category mapping; default: train's).
    ``pool_name`` names the pool in errors."""
    metadata = metadata if metadata is not None else train_categories
    by_id = {c["id"]: c for c in metadata}
    missing = [c["id"] for c in train_categories if c["id"] not in by_id]
    if missing:
        raise InputError(f"category metadata lacks training-json categories {missing[:5]}")
    target_ids = {c["id"] for c in train_categories}
    ids = set(target_ids)
    if pool and extra_categories:
        pool_ids = _pool_category_ids(pool, metadata, pool_name)
        ids |= {cid for cid, entries in pool_ids.items() if entries}
    ordered = sorted(ids)
    names = {c["id"]: c["name"] for c in metadata}
    return ClassMap(
        tuple(ordered), tuple(names[c] for c in ordered), tuple(i for i, c in enumerate(ordered) if c in target_ids)
    )


def _pool_category_ids(pool: InstancePool, metadata: list[dict[str, Any]], pool_name: str) -> dict[int, list]:
    ids = {i: cid for cid, i in category_index(metadata).items()}
    unknown = sorted(k for k in pool if k not in ids)
    if unknown:
        raise InputError(
            f"{pool_name} has category indices {unknown[:5]} beyond the {len(ids)} categories of its metadata "
            "(set training.categories to the generation stage's categories.json)"
        )
    return {ids[k]: entries for k, entries in pool.items()}


def pool_by_category(
    pool: InstancePool, metadata: list[dict[str, Any]], classes: ClassMap, pool_name: str = "instance pool"
) -> dict[int, list[Any]]:
    """The pool's entries keyed by category id, restricted to the run's classes."""
    wanted = set(classes.category_ids)
    by_id = _pool_category_ids(pool, metadata, pool_name)
    return {cid: entries for cid, entries in by_id.items() if cid in wanted and entries}


def write_class_map(classes: ClassMap, path: str | os.PathLike) -> None:
    write_json(classes.to_json(), path)


def read_class_map(path: str | os.PathLike) -> ClassMap:
    return ClassMap.from_json(read_json(path))
