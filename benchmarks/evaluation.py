"""LVIS evaluation speed: faster-coco-eval's LVIS mode vs the lvis API on the same synthetic input.

The target size is LVIS val (~20k images, 1203 categories, 300 detections per image); the default here is
smaller so that it fits 24 GB of memory and minutes on 2 CPU cores — pass ``--images/--categories/--dets`` to
change it. Boxes only (``bbox``): mask IoU costs the same extra in both backends.

    .venv/bin/python benchmarks/evaluation.py [--images 2000 --categories 300 --dets 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from divergen_lib.evaluation import evaluate_lvis
from divergen_lib.formats import write_json


def synthetic(n_images: int, n_categories: int, dets: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """An LVIS-format ground truth (5 boxes per image, r/c/f categories) and jittered/random detections."""
    rng = np.random.default_rng(seed)
    categories = [{"id": c, "name": f"c{c}", "frequency": "rcf"[c % 3]} for c in range(1, n_categories + 1)]
    images, annotations = [], []
    for i in range(1, n_images + 1):
        present = rng.choice(n_categories, 5, replace=False) + 1
        negatives = [int(c) for c in rng.choice(n_categories, 3) + 1 if c not in present]
        images.append(
            {"id": i, "width": 640, "height": 480, "neg_category_ids": negatives, "not_exhaustive_category_ids": []}
        )
        for cid in present:
            x, y, w, h = rng.uniform(0, 400), rng.uniform(0, 300), rng.uniform(10, 200), rng.uniform(10, 150)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(cid),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "segmentation": [[x, y, x + w, y, x + w, y + h]],
                }
            )
    results = []
    for ann in annotations:
        x, y, w, h = ann["bbox"]
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": [x + rng.normal(0, 5), y + rng.normal(0, 5), w, h],
                "score": float(rng.random()),
            }
        )
    for i in range(1, n_images + 1):
        for _ in range(dets - 5):
            results.append(
                {
                    "image_id": i,
                    "category_id": int(rng.integers(1, n_categories + 1)),
                    "bbox": list(rng.uniform(0, 300, 2)) + list(rng.uniform(10, 100, 2)),
                    "score": float(rng.random() * 0.5),
                }
            )
    return {"images": images, "annotations": annotations, "categories": categories}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--categories", type=int, default=300)
    parser.add_argument("--dets", type=int, default=100)
    args = parser.parse_args()
    gt, results = synthetic(args.images, args.categories, args.dets)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        write_json(gt, path)
        times, metrics = {}, {}
        for backend in ("fast", "lvis"):
            start = time.perf_counter()
            metrics[backend] = evaluate_lvis(path, results, "bbox", backend=backend)
            times[backend] = time.perf_counter() - start
    gap = max(abs(metrics["fast"][k] - metrics["lvis"][k]) for k in metrics["fast"])
    print(f"{args.images} images, {args.categories} categories, {len(results)} detections (bbox)")
    print(f"  faster-coco-eval LVIS mode : {times['fast']:8.1f} s")
    print(
        f"  lvis API                   : {times['lvis']:8.1f} s   (lvis / fast = {times['lvis'] / times['fast']:.1f})"
    )
    print(f"  largest metric difference  : {gap:.2e}")


if __name__ == "__main__":
    main()
