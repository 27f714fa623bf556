"""What of the filtered instances goes into the pool: per-source quotas, caps and a deterministic subsample.

X-Paste's main pool draws 150k generated and 150k web-retrieved instances uniformly at random over all categories
from those that pass its filter (METHOD_SPEC §6.1); DiverGen compares pools of 300k, 600k and 1200k instances. Every
instance that passed the filters gets a rank from a hash of (seed, its id): a quota, the per-category cap and the
pool cap each take the lowest-ranked instances they can hold. So the draw does not depend on row order or on the
number of processes, and for one seed a smaller pool is a subset of a larger one.

Order: quotas (an instance counts for the first quota it matches; with quotas, one that matches none stays out),
then ``max_per_category``, then ``max_instances``. Instances not drawn keep their scores and get the reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .config import PoolComposition, PoolQuota

NOT_DRAWN = "not drawn for the pool"


def source_kind(row: dict[str, Any]) -> str:
    """``external`` for images brought in from a folder, ``generated`` for a generator's."""
    return "external" if row.get("prompt_source") == "external" else "generated"


def draw_rank(seed: int, instance_id: str) -> bytes:
    """The instance's place in the seed's random order."""
    return hashlib.sha256(f"{seed}|{instance_id}".encode()).digest()


def _matches(quota: PoolQuota, row: dict[str, Any]) -> bool:
    in_generators = quota.generators is None or row["model"] in quota.generators
    return in_generators and quota.kind in ("any", source_kind(row))


def compose_pool(rows: Sequence[dict[str, Any]], cfg: PoolComposition, seed: int) -> dict[str, str]:
    """Annotation id -> why each instance that passed the filters (``keep``) is left out of the pool."""
    kept = sorted((r for r in rows if r["keep"]), key=lambda r: draw_rank(seed, r["annotation_id"]))
    left_out: dict[str, str] = {}
    drawn = kept
    if cfg.quotas:
        drawn = []
        members = Counter(next((q.name for q in cfg.quotas if _matches(q, r)), None) for r in kept)
        taken: Counter[str] = Counter()
        for row in kept:
            quota = next((q for q in cfg.quotas if _matches(q, row)), None)
            if quota is None:
                left_out[row["annotation_id"]] = f"{NOT_DRAWN}: in no filtration.pool quota"
            elif taken[quota.name] >= quota.max_instances:
                left_out[row["annotation_id"]] = (
                    f"{NOT_DRAWN}: quota {quota.name} holds {quota.max_instances} of its {members[quota.name]}"
                )
            else:
                taken[quota.name] += 1
                drawn.append(row)
    if cfg.max_per_category is not None:
        per_category: Counter[int] = Counter()
        within = []
        for row in drawn:
            per_category[row["category_id"]] += 1
            if per_category[row["category_id"]] > cfg.max_per_category:
                left_out[row["annotation_id"]] = f"{NOT_DRAWN}: category holds {cfg.max_per_category}"
            else:
                within.append(row)
        drawn = within
    if cfg.max_instances is not None:
        for row in drawn[cfg.max_instances :]:
            left_out[row["annotation_id"]] = f"{NOT_DRAWN}: pool holds {cfg.max_instances} of {len(drawn)}"
    return left_out
