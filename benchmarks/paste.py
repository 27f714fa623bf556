"""Copy-paste speed: ``paste_instances`` vs a naive full-canvas implementation on the same synthetic input.

A 1024×1024 image with 20 LVIS-style RLE annotations gets 10 instances pasted per image (rng seeds are chosen
so that the first draw, the instance count, is 10; a rare size rejection pastes fewer). The reference places each
instance on a full H×W canvas, decodes every mask to a full bitmap up front and recomputes every box after each
paste; both run in this process, on one OpenCV thread (as in a data-loader worker), and must produce the same image
and the same masks and boxes.

    .venv/bin/python benchmarks/paste.py [--images 50 --reference-images 10 --blend hard]
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import cv2
import numpy as np

from divergen_lib.formats import annotation_mask, mask_bbox, mask_to_rle
from divergen_lib.paste import PasteConfig, _kept, _target_size, paste_instances

SIZE = 1024
PASTED = 10


def blob(height: int, width: int, cx: float, cy: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A random star-shaped polygon (12 vertices) as a boolean mask."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 12))
    r = radius * rng.uniform(0.5, 1.0, 12)
    points = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round().astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def synthetic(
    n_annotations: int = 20, n_categories: int = 40, seed: int = 0
) -> tuple[np.ndarray, list[dict], dict[int, list[np.ndarray]], dict[int, tuple[float, float]]]:
    """Image, RLE annotations with tight boxes, 256-px RGBA crops (3 per category), and area priors (3 in 4)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    annotations = []
    while len(annotations) < n_annotations:
        mask = blob(SIZE, SIZE, *rng.uniform(0, SIZE, 2), SIZE * rng.uniform(0.02, 0.2), rng)
        if mask.any():
            annotations.append(
                {
                    "category_id": 1000 + len(annotations),
                    "bbox": mask_bbox(mask),
                    "area": int(mask.sum()),
                    "segmentation": mask_to_rle(mask),
                }
            )
    crops = {}
    for cid in range(1, n_categories + 1):
        crops[cid] = []
        for _ in range(3):
            crop = np.empty((256, 256, 4), np.uint8)
            crop[..., :3] = rng.integers(0, 256, 3, dtype=np.uint8)
            crop[..., 3] = 255 * blob(256, 256, 128, 128, 127, rng)
            crops[cid].append(crop)
    prior = {cid: (float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.02, 0.1))) for cid in crops if cid % 4}
    return image, annotations, crops, prior


def reference_paste(
    image: np.ndarray,
    annotations: list[dict[str, Any]],
    crops: dict[int, list[np.ndarray]],
    prior: dict[int, tuple[float, float]],
    cfg: PasteConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The naive algorithm with the library's draws (``cas_random`` sampling, sizing, flip, centre, in its order)
    and keep rule: full bitmaps for all masks, full-canvas placement and blending, every box recomputed after every
    paste (as DiverGen does; with tight input boxes this gives the library's boxes)."""
    height, width = image.shape[:2]
    categories = sorted(c for c, v in crops.items() if v)
    n = int(rng.integers(0, cfg.max_samples))
    out = image.astype(np.float32)
    anns = [dict(a) for a in annotations]
    masks = [annotation_mask(a, height, width) for a in anns]
    boxes = [mask_bbox(m) for m in masks]
    for _ in range(n):
        cid = categories[int(rng.integers(len(categories)))]
        crop = crops[cid][int(rng.integers(len(crops[cid])))]
        size = _target_size(crop, prior.get(cid), height, width, cfg, rng)
        if size is None:
            continue
        rgba = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        if rng.random() < cfg.flip_prob:
            rgba = rgba[:, ::-1]
        h, w = rgba.shape[:2]
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        canvas = np.zeros((height, width, 4), np.float32)
        ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
        canvas[ys, xs] = rgba[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        alpha = canvas[..., 3] / 255.0
        new_mask = alpha > 0
        if not new_mask.any():
            continue
        weight = {
            "hard": new_mask.astype(np.float32),
            "alpha": alpha,
            "gaussian": cv2.GaussianBlur(new_mask.astype(np.float32), (5, 5), 0),
        }[cfg.blend]
        out = out * (1 - weight[..., None]) + canvas[..., :3] * weight[..., None]
        masks = [m & ~new_mask for m in masks]
        new_boxes = [mask_bbox(m) for m in masks]
        keep = [k for k in range(len(masks)) if _kept(boxes[k], new_boxes[k], int(masks[k].sum()))]
        anns, masks, boxes = [anns[k] for k in keep], [masks[k] for k in keep], [new_boxes[k] for k in keep]
        anns.append({"category_id": cid, "pasted": True})
        masks.append(new_mask)
        boxes.append(mask_bbox(new_mask))
    result = [
        {**a, "bbox": b, "area": int(m.sum()), "segmentation": mask_to_rle(m)}
        for a, m, b in zip(anns, masks, boxes, strict=True)
    ]
    return np.clip(out, 0, 255).astype(np.uint8), result


def same_output(a: tuple[np.ndarray, list[dict]], b: tuple[np.ndarray, list[dict]]) -> bool:
    """Same image, and the same categories, boxes and masks in the same order."""
    height, width = a[0].shape[:2]
    if not np.array_equal(a[0], b[0]) or len(a[1]) != len(b[1]):
        return False
    return all(
        x["category_id"] == y["category_id"]
        and x["bbox"] == y["bbox"]
        and np.array_equal(annotation_mask(x, height, width), annotation_mask(y, height, width))
        for x, y in zip(a[1], b[1], strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--reference-images", type=int, default=10)
    parser.add_argument("--blend", choices=["hard", "alpha", "gaussian"], default="hard")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    cfg = PasteConfig(blend=args.blend)
    image, annotations, crops, prior = synthetic()
    draws_ten = (s for s in itertools.count() if np.random.default_rng(s).integers(0, cfg.max_samples) == PASTED)
    seeds = list(itertools.islice(draws_ten, max(args.images, args.reference_images)))
    runs = {"paste_instances": (paste_instances, args.images), "reference": (reference_paste, args.reference_images)}
    speed, outputs = {}, {}
    for name, (fn, count) in runs.items():
        start = time.perf_counter()
        outputs[name] = [fn(image, annotations, crops, prior, cfg, np.random.default_rng(s)) for s in seeds[:count]]
        speed[name] = count / (time.perf_counter() - start)
    shared = min(args.images, args.reference_images)
    pairs = zip(outputs["paste_instances"][:shared], outputs["reference"][:shared], strict=True)
    agree = all(same_output(a, b) for a, b in pairs)
    pasted = np.mean([sum(bool(x.get("pasted")) for x in anns) for _, anns in outputs["paste_instances"]])
    print(f"{SIZE}×{SIZE} image, {len(annotations)} RLE annotations, {args.blend} blending")
    print(f"instances pasted per image (mean, after size rejections and occlusion drops): {pasted:.1f}")
    for name, value in speed.items():
        print(f"{name:>16}: {value:8.2f} images/s")
    print(f"speed ratio: {speed['paste_instances'] / speed['reference']:.1f}×")
    print(f"outputs agree on the {shared} shared images (image, masks, boxes): {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
