"""Random valid LVIS ground truth and results for the evaluation oracle tests: polygon and RLE ground truth,
images without any positive annotation, negative and not-exhaustive categories, a category without ground truth,
images with more than 300 detections, one-pixel to whole-image boxes and masks touching the borders, tied scores."""

import json
import numpy as np
from pycocotools import mask as mask_utils


def polygon(rng, w, h):
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(2, max(3, min(w, h) / 2))
    n = int(rng.integers(3, 8))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    xs = np.clip(cx + r * np.cos(ang), 0, w)
    ys = np.clip(cy + r * np.sin(ang), 0, h)
    return [float(v) for xy in zip(xs, ys) for v in xy]


def make_case(seed, n_images=12, n_cats=8):
    rng = np.random.default_rng(seed)
    cats = [
        {
            "id": int(i),
            "name": f"c{i}",
            "frequency": "rcf"[i % 3],
            "synonyms": [f"c{i}"],
            "image_count": 1,
            "instance_count": 1,
            "def": "",
            "synset": f"c{i}.n.01",
        }
        for i in range(1, n_cats + 1)
    ]
    images, anns = [], []
    aid = 1
    for iid in range(1, n_images + 1):
        w, h = int(rng.integers(20, 120)), int(rng.integers(20, 120))
        positive = (
            [] if rng.random() < 0.3 else list(rng.choice(n_cats - 1, size=int(rng.integers(1, 4)), replace=False) + 1)
        )
        for cid in positive:
            for _ in range(int(rng.integers(1, 4))):
                if rng.random() < 0.5:
                    seg = [polygon(rng, w, h)]
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                else:
                    m = np.zeros((h, w), np.uint8)
                    x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
                    m[y0 : y0 + int(rng.integers(1, h)), x0 : x0 + int(rng.integers(1, w))] = 1
                    rle = mask_utils.encode(np.asfortranarray(m))
                    seg = {"size": [h, w], "counts": rle["counts"].decode()}
                area = float(mask_utils.area(rle))
                if area < 1:
                    continue
                bbox = [float(v) for v in mask_utils.toBbox(rle)]
                anns.append(
                    {
                        "id": aid,
                        "image_id": iid,
                        "category_id": int(cid),
                        "segmentation": seg,
                        "area": area,
                        "bbox": bbox,
                    }
                )
                aid += 1
        others = [c for c in range(1, n_cats + 1) if c not in positive]
        rng.shuffle(others)
        neg = [int(c) for c in others[:2]]
        ne = [int(c) for c in positive[:1]] if rng.random() < 0.5 else []
        images.append(
            {
                "id": iid,
                "width": w,
                "height": h,
                "file_name": f"{iid}.jpg",
                "neg_category_ids": neg,
                "not_exhaustive_category_ids": ne,
            }
        )
    gt = {"images": images, "annotations": anns, "categories": cats, "info": {}, "licenses": []}
    results = []
    for img in images:
        w, h = img["width"], img["height"]
        n = int(rng.integers(0, 400 if rng.random() < 0.2 else 20))
        for _ in range(n):
            m = np.zeros((h, w), np.uint8)
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            m[y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))] = 1
            rle = mask_utils.encode(np.asfortranarray(m))
            results.append(
                {
                    "image_id": img["id"],
                    "category_id": int(rng.integers(1, n_cats + 1)),
                    "score": float(np.round(rng.random(), 2)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                }
            )
    return gt, results
