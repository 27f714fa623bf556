"""Generative copy-paste (X-Paste / DiverGen, METHOD_SPEC §7.3), engine-agnostic.

``paste_instances(image, annotations, pool, prior, rng)`` takes an H×W×3 uint8 image and LVIS-style
annotation dicts (``category_id``, ``bbox``, ``segmentation``) and returns the pasted image and updated
annotations: ``n ~ U{0..max_samples-1}`` instances are drawn (category uniformly, then an instance), sized by the
category's area prior (else a random scale), flipped, centred uniformly, and pasted in turn; each paste removes
its pixels from the masks under it, boxes are recomputed from masks, and an occluded instance is kept only if
its box moved by at most 10 px on every side or more than 300 px of its mask remain. New instances carry
``"pasted": True``. Randomness comes only from ``rng``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from .formats import InstancePool, annotation_mask, mask_bbox, mask_to_rle, read_image

KEEP_SHIFT_PX = 10
KEEP_AREA_PX = 300


@dataclass(frozen=True)
class PasteConfig:
    """``max_samples``: instances per image ~ U{0..max_samples-1}; ``sampling``: ``cas_random`` (category,
    then instance) or ``random`` (any instance); ``blend``: ``hard``, ``alpha`` or ``gaussian`` (5×5 blurred
    mask); ``random_scale``: the (min, max) fraction of the crop size for categories without an area prior."""

    max_samples: int = 20
    sampling: Literal["cas_random", "random"] = "cas_random"
    blend: Literal["hard", "alpha", "gaussian"] = "hard"
    random_scale: tuple[float, float] = (0.05, 0.3)
    aspect_jitter: float = 0.2
    flip_prob: float = 0.5


def area_prior(dataset: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """Per category: mean and population std of sqrt(box area / image area) over its training annotations."""
    sizes = {img["id"]: img["width"] * img["height"] for img in dataset["images"]}
    values: dict[int, list[float]] = defaultdict(list)
    for ann in dataset["annotations"]:
        w, h = ann["bbox"][2:]
        values[ann["category_id"]].append(np.sqrt(w * h / sizes[ann["image_id"]]))
    return {cid: (float(np.mean(v)), float(np.std(v))) for cid, v in values.items()}


def load_pool_crops(pool: InstancePool, index_to_category: dict[int, int]) -> dict[int, list[np.ndarray]]:
    """RGBA crops of a pool (preprocessed ``*`` entries), keyed by category id."""
    return {
        index_to_category[k]: [read_image(e.path, "RGBA") for e in entries] for k, entries in pool.items() if entries
    }


def _target_size(
    crop: np.ndarray,
    prior: tuple[float, float] | None,
    height: int,
    width: int,
    cfg: PasteConfig,
    rng: np.random.Generator,
) -> tuple[int, int] | None:
    ch, cw = crop.shape[:2]
    if prior is not None:
        s = float(np.clip(rng.normal(*prior), 10 / height, 0.5))
        aspect = cw / ch * rng.uniform(1 - cfg.aspect_jitter, 1 + cfg.aspect_jitter)
        w = int(np.sqrt(aspect * s * s * height * width))
        h = int(w / aspect)
        if w < 5 or h < 5 or w >= width or h >= height:
            return None
        return w, h
    f = rng.uniform(*cfg.random_scale)
    w, h = int(f * cw), int(f * ch)
    return None if w < 3 or h < 3 or w >= width or h >= height else (w, h)


def _place(rgba: np.ndarray, height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The instance on an H×W canvas with its centre at a uniform position: (rgb float H×W×3, alpha H×W in 0..1)."""
    h, w = rgba.shape[:2]
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    canvas = np.zeros((height, width, 4), np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
    canvas[ys, xs] = rgba[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return canvas[..., :3], canvas[..., 3] / 255.0


def _mask_of(ann: dict[str, Any], height: int, width: int) -> np.ndarray:
    if "mask" in ann:
        return ann["mask"]
    return annotation_mask(ann, height, width)


def paste_instances(
    image: np.ndarray,
    annotations: list[dict[str, Any]],
    crops: dict[int, list[np.ndarray]],
    prior: dict[int, tuple[float, float]],
    cfg: PasteConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Paste instances from ``crops`` (category id -> RGBA arrays) into ``image``; see the module docstring."""
    height, width = image.shape[:2]
    categories = sorted(c for c, v in crops.items() if v)
    n = int(rng.integers(0, cfg.max_samples)) if categories else 0
    if n == 0:
        return image, annotations
    everything = [(c, i) for c in categories for i in range(len(crops[c]))]
    out = image.astype(np.float32)
    anns = [dict(a) for a in annotations]
    masks = [_mask_of(a, height, width) for a in anns]
    boxes = [list(a["bbox"]) for a in anns]
    for _ in range(n):
        if cfg.sampling == "cas_random":
            cid = categories[int(rng.integers(len(categories)))]
            crop = crops[cid][int(rng.integers(len(crops[cid])))]
        else:
            cid, i = everything[int(rng.integers(len(everything)))]
            crop = crops[cid][i]
        size = _target_size(crop, prior.get(cid), height, width, cfg, rng)
        if size is None:
            continue
        rgba = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        if rng.random() < cfg.flip_prob:
            rgba = rgba[:, ::-1]
        rgb, alpha = _place(np.ascontiguousarray(rgba), height, width, rng)
        new_mask = alpha > 0
        if not new_mask.any():
            continue
        weight = {
            "hard": new_mask.astype(np.float32),
            "alpha": alpha,
            "gaussian": cv2.GaussianBlur(new_mask.astype(np.float32), (5, 5), 0),
        }[cfg.blend]
        out = out * (1 - weight[..., None]) + rgb * weight[..., None]
        keep = []
        for k in range(len(masks)):
            x, y, w, h = boxes[k]
            if new_mask[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))].any():
                before = boxes[k]
                masks[k] = masks[k] & ~new_mask
                boxes[k] = mask_bbox(masks[k])
                if not _kept(before, boxes[k], int(masks[k].sum())):
                    continue
            keep.append(k)
        anns, masks, boxes = [anns[k] for k in keep], [masks[k] for k in keep], [boxes[k] for k in keep]
        anns.append({"category_id": cid, "bbox": mask_bbox(new_mask), "pasted": True})
        masks.append(new_mask)
        boxes.append(anns[-1]["bbox"])
    result = []
    for ann, mask, box in zip(anns, masks, boxes, strict=True):
        result.append(
            {
                **{k: v for k, v in ann.items() if k != "mask"},
                "bbox": box,
                "area": int(mask.sum()),
                "segmentation": mask_to_rle(mask),
            }
        )
    return np.clip(out, 0, 255).astype(np.uint8), result


def _kept(old_box: list[float], new_box: list[float], area: int) -> bool:
    """DiverGen's rule: every box edge moved by at most 10 px, or more than 300 px of mask left."""
    ox, oy, ow, oh = old_box
    nx, ny, nw, nh = new_box
    moved = max(abs(ox - nx), abs(oy - ny), abs(ox + ow - nx - nw), abs(oy + oh - ny - nh))
    return area > 0 and (moved <= KEEP_SHIFT_PX or area > KEEP_AREA_PX)
