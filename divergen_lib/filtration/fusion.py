"""X-Paste's "max CLIP" fusion of several annotation methods (METHOD_SPEC §5.2, §6.1).

Every generated image has one candidate mask per annotation method, each with its CLIP score (the masked instance
on the ``clip_score`` background against the ``clip_score`` text). Per image the candidate with the highest score is
kept (ties: the method listed first) and the others are dropped with the reason; so each generated image enters the
pool at most once. X-Paste's CLIP-score bar then applies to the kept candidates, per generator and category over
all methods (``bar = min(min_clip, best score - tolerance)``, :mod:`.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FUSED = "max_clip"


def max_clip(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The best-scoring candidate of every generated image (in ``rows`` order, ``fused_from`` listing every method that
    had a candidate), and annotation id -> why each other candidate was dropped. Rows carry ``generation_id``,
    ``method``, ``annotation_id`` and ``clip_score``; method order is the order methods first appear in ``rows``."""
    rank = {m: i for i, m in enumerate(dict.fromkeys(r["method"] for r in rows))}
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = best.get(row["generation_id"])
        if held is None or (-row["clip_score"], rank[row["method"]]) < (-held["clip_score"], rank[held["method"]]):
            best[row["generation_id"]] = row
    candidates: dict[str, list[str]] = {}
    losers: dict[str, str] = {}
    for row in rows:
        winner = best[row["generation_id"]]
        candidates.setdefault(row["generation_id"], []).append(row["method"])
        if row is not winner:
            losers[row["annotation_id"]] = (
                f"max-CLIP: {winner['method']}'s mask scored higher ({winner['clip_score']:.2f} vs "
                f"{row['clip_score']:.2f})"
            )
    chosen = [{**r, "fused_from": candidates[r["generation_id"]]} for r in rows if best[r["generation_id"]] is r]
    return chosen, losers
