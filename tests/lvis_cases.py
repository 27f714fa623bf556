"""Random valid LVIS ground truth and results for the evaluation oracle tests: polygon and RLE ground truth,
images without any positive annotation, negative and not-exhaustive categories, a category without ground truth,
images with more than 300 detections, one-pixel to whole-image boxes and masks touching the borders, tied scores."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def _polygon(rng: np.random.Generator, w: int, h: int) -> list[float]:
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(2, max(3, min(w, h) / 2))
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))))
    xs, ys = np.clip(cx + r * np.cos(angles), 0, w), np.clip(cy + r * np.sin(angles), 0, h)
    return [float(v) for xy in zip(xs, ys, strict=True) for v in xy]


def _rectangle(rng: np.random.Generator, w: int, h: int) -> dict[str, Any]:
    """A compressed RLE of a random rectangle (clipped at the borders), 1 pixel up to the whole image."""
    mask = np.zeros((h, w), np.uint8)
    x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
    mask[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))] = 1
    return mask_utils.encode(np.asfortranarray(mask))


def _category(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"c{i}",
        "synonyms": [f"c{i}"],
        "synset": f"c{i}.n.01",
        "def": "",
        "frequency": "rcf"[i % 3],
        "image_count": 1,
        "instance_count": 1,
    }


def _annotations(rng, image_id, w, h, categories, next_id):
    """Ground truth of one image: 1-3 instances of each category in ``categories``, polygons or RLE."""
    anns = []
    for cid in categories:
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5:
                segmentation: Any = [_polygon(rng, w, h)]
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
            else:
                rle = _rectangle(rng, w, h)
                segmentation = {"size": [h, w], "counts": rle["counts"].decode()}
            area = float(mask_utils.area(rle))
            if area >= 1:
                bbox = [float(v) for v in mask_utils.toBbox(rle)]
                anns.append(
                    {
                        "id": next_id + len(anns),
                        "image_id": image_id,
                        "category_id": int(cid),
                        "segmentation": segmentation,
                        "area": area,
                        "bbox": bbox,
                    }
                )
    return anns


def make_case(seed: int, n_images: int = 12, n_cats: int = 8) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An LVIS ground-truth dict and a results list; category ``n_cats`` never has ground truth."""
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for image_id in range(1, n_images + 1):
        w, h = int(rng.integers(20, 120)), int(rng.integers(20, 120))
        count = 0 if rng.random() < 0.3 else int(rng.integers(1, 4))
        positive = [int(c) for c in rng.choice(n_cats - 1, size=count, replace=False) + 1]
        anns += _annotations(rng, image_id, w, h, positive, len(anns) + 1)
        others = [c for c in range(1, n_cats + 1) if c not in positive]
        rng.shuffle(others)
        images.append(
            {
                "id": image_id,
                "width": w,
                "height": h,
                "file_name": f"{image_id}.jpg",
                "neg_category_ids": [int(c) for c in others[:2]],
                "not_exhaustive_category_ids": positive[:1] if rng.random() < 0.5 else [],
            }
        )
    results = []
    for img in images:
        w, h = img["width"], img["height"]
        for _ in range(int(rng.integers(0, 400 if rng.random() < 0.2 else 20))):
            rle = _rectangle(rng, w, h)
            results.append(
                {
                    "image_id": img["id"],
                    "category_id": int(rng.integers(1, n_cats + 1)),
                    "score": float(np.round(rng.random(), 2)),  # ties
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                }
            )
    gt = {"images": images, "annotations": anns, "categories": [_category(i) for i in range(1, n_cats + 1)]}
    return {**gt, "info": {}, "licenses": []}, results


def _uncompressed_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """The uncompressed RLE (``counts`` a list, as COCO's crowd annotations are) of a compressed one."""
    flat = mask_utils.decode(rle).flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(rle["size"]), "counts": [int(c) for c in counts]}


def make_coco_case(seed: int, n_images: int = 12, n_cats: int = 8) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO ground truth (about one instance in six an ``iscrowd`` region as uncompressed RLE) and results."""
    gt, results = make_case(seed, n_images, n_cats)
    rng = np.random.default_rng(seed + 10_000)
    for img in gt["images"]:
        del img["neg_category_ids"], img["not_exhaustive_category_ids"]
    for cat in gt["categories"]:
        cat.pop("frequency")
    for ann in gt["annotations"]:
        ann["iscrowd"] = int(rng.random() < 1 / 6)
        if ann["iscrowd"]:
            img = gt["images"][ann["image_id"] - 1]
            seg = ann["segmentation"]
            rle = (
                mask_utils.merge(mask_utils.frPyObjects(seg, img["height"], img["width"]))
                if isinstance(seg, list)
                else {"size": seg["size"], "counts": seg["counts"].encode()}
            )
            ann["segmentation"] = _uncompressed_rle(rle)
    return gt, results
