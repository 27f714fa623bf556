"""Free energy of the classifier on ground-truth boxes and the train-val gap (TVG), DiverGen Sec. 3.1 / A.1.

``E(x) = -tau * logsumexp(f(x) / tau)`` over the foreground class logits ``f`` of the box head at a
ground-truth box (Joseph et al.'s energy score, ``tau = 0.9``). A detector that fits its training set much
better than unseen data has lower (more confident) energies on train than on val; the gap between the two
distributions, per LVIS frequency group, is DiverGen's measure of that over-fitting. The paper's exact TVG
formula is not public: here it is ``mean(E_val) - mean(E_train)`` per group, with the 1-D Wasserstein
distance between the two distributions beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp
from scipy.stats import wasserstein_distance

from ..formats import annotation_mask, image_file, mask_bbox, read_image
from ..progress import progress

GROUPS = ("r", "c", "f")

# (H×W×3 uint8 image, N×4 x0 y0 x1 y1 boxes) -> N×C foreground class logits
BoxLogits = Callable[[np.ndarray, np.ndarray], np.ndarray]


def energy(logits: np.ndarray, tau: float = 0.9) -> np.ndarray:
    """Per-row free energy ``-tau * logsumexp(logits / tau)``."""
    return -tau * logsumexp(np.asarray(logits, dtype=np.float64) / tau, axis=1)


def sample_images(dataset: dict[str, Any], max_images: int, seed: int) -> list[dict[str, Any]]:
    """At most ``max_images`` annotated images of ``dataset``, drawn reproducibly."""
    annotated = sorted({a["image_id"] for a in dataset["annotations"]})
    rng = np.random.default_rng(seed)
    picked = set(rng.permutation(annotated)[:max_images].tolist())
    return [img for img in dataset["images"] if img["id"] in picked]


def gt_energies(
    box_logits: BoxLogits,
    dataset: dict[str, Any],
    images: Sequence[dict[str, Any]],
    image_root: Any,
    class_index: dict[int, int],
    tau: float,
    desc: str = "energy",
) -> dict[str, list[float]]:
    """Energies of the ground-truth instances of ``images`` (categories the classifier knows), per frequency
    group of ``dataset``'s categories."""
    frequency = {c["id"]: c.get("frequency", "f") for c in dataset["categories"]}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in dataset["annotations"]:
        if ann["category_id"] in class_index:
            by_image.setdefault(ann["image_id"], []).append(ann)
    out: dict[str, list[float]] = {g: [] for g in GROUPS}
    for info in progress(images, desc=desc, unit="img"):
        anns = by_image.get(info["id"], [])
        if not anns:
            continue
        boxes = np.array([_box(a, info) for a in anns], dtype=np.float32)
        values = energy(box_logits(read_image(image_file(info, image_root)), boxes), tau)
        for ann, value in zip(anns, values, strict=True):
            out[frequency[ann["category_id"]]].append(float(value))
    return out


def _box(ann: dict[str, Any], info: dict[str, Any]) -> list[float]:
    x, y, w, h = ann["bbox"] if "bbox" in ann else mask_bbox(annotation_mask(ann, info["height"], info["width"]))
    return [x, y, x + w, y + h]


def train_val_gap(train: dict[str, list[float]], val: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per frequency group (and ``all``): instance counts, mean energies, their gap and the Wasserstein distance."""
    rows = []
    for group in (*GROUPS, "all"):
        a = np.array(sum(train.values(), []) if group == "all" else train.get(group, []))
        b = np.array(sum(val.values(), []) if group == "all" else val.get(group, []))
        row: dict[str, Any] = {"group": group, "n_train": a.size, "n_val": b.size}
        if a.size and b.size:
            row.update(
                mean_train=float(a.mean()),
                mean_val=float(b.mean()),
                tvg=float(b.mean() - a.mean()),
                wasserstein=float(wasserstein_distance(a, b)),
            )
        rows.append(row)
    return rows
