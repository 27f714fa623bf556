"""The two filters' decision rules, as pure functions over scores.

* X-Paste's CLIP score rule: per category, ``bar = min(min_clip, best score of the category - tolerance)``;
  keep an instance if its score is at least ``bar`` and its mask area fraction lies in ``[min_area, max_area]``.
  Lowering the bar to just under a category's best score means no category loses all its instances to the
  score threshold (the area bounds still apply).
* DiverGen's CLIP inter-similarity: the score of a generated instance is the mean cosine similarity of its
  embedding to the embeddings of all real training instances of its category — equivalently the dot product
  of its normalised embedding with the mean of their normalised embeddings; keep if at least ``threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    return embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)


def clip_score(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """X-Paste's CLIP score: 100 x cosine between each image and its text (row-wise)."""
    return 100.0 * np.sum(normalise(image_embeddings) * normalise(text_embeddings), axis=-1)


def xpaste_bar(scores: Sequence[float], min_clip: float, tolerance: float) -> float:
    """A category's score threshold: ``min(min_clip, max(scores) - tolerance)``."""
    return min(min_clip, max(scores) - tolerance)


def xpaste_keep(
    scores: Sequence[float], areas: Sequence[float], min_clip: float, tolerance: float, min_area: float, max_area: float
) -> list[str | None]:
    """For the instances of one category: ``None`` (keep) or the reason each is dropped."""
    bar = xpaste_bar(scores, min_clip, tolerance)
    reasons: list[str | None] = []
    for score, area in zip(scores, areas, strict=True):
        if score < bar:
            reasons.append(f"CLIP score {score:.2f} < {bar:.2f}")
        elif not min_area <= area <= max_area:
            reasons.append(f"area {area:.3f} outside [{min_area}, {max_area}]")
        else:
            reasons.append(None)
    return reasons


def category_mean(real_embeddings: np.ndarray) -> np.ndarray:
    """Mean of the normalised embeddings of a category's real instances (not re-normalised)."""
    return normalise(real_embeddings).mean(axis=0)


def inter_similarity(generated_embeddings: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """DiverGen's score: normalised generated embeddings dotted with the category mean."""
    return normalise(generated_embeddings) @ mean
